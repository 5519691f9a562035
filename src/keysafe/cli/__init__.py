"""The ``keysafe`` command line: a thin adapter over the SDK (and, for ``up``/``server``,
the server runner). Heavy libraries are imported inside commands to keep start-up fast."""
