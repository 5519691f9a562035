"""The keysafe Python SDK.

::

    from keysafe.client import Client

    with Client() as ks:                      # KEYSAFE_ADDR/TOKEN/CACERT, else the profile
        password = ks.get("payments/dev/DB_PASSWORD")

Errors are the classes of ``keysafe.errors`` (NotFound, Forbidden, ConnectionFailed...).
Importing this package pulls in nothing server-side.
"""

from keysafe.client._client import Client
from keysafe.client._models import (
    AuditReport,
    Health,
    InitResult,
    IssuedToken,
    RewrapProgress,
    SealStatus,
    Secret,
    SecretEntry,
    SecretHistory,
    SecretMetadata,
    SecretVersion,
    TokenInfo,
)

__all__ = [
    "AuditReport",
    "Client",
    "Health",
    "InitResult",
    "IssuedToken",
    "RewrapProgress",
    "SealStatus",
    "Secret",
    "SecretEntry",
    "SecretHistory",
    "SecretMetadata",
    "SecretVersion",
    "TokenInfo",
]
