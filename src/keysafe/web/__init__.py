"""The web console (``/ui``): server-rendered pages over the same services as the API.

An adapter beside ``server/`` and ``cli/``: it parses forms, calls the services with the
caller's request context and renders templates; it holds no domain logic.
"""

from keysafe.web.app import install_console

__all__ = ["install_console"]
