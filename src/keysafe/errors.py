"""The one error tree of keysafe.

::

    KeysafeError                      code            HTTP  CLI exit
    ├── InvalidInput                  invalid_input   400   2
    │   └── ValueTooLarge             value_too_large 413   2
    ├── Unauthenticated               unauthenticated 401   6
    ├── Forbidden                     forbidden       403   1
    │   └── MfaRequired               mfa_required    403   1   (step-up: log in with TOTP)
    ├── NotFound                      not_found       404   3
    ├── RateLimited                   rate_limited    429   9
    │   └── AccountLocked             account_locked  429   9
    ├── Conflict                      conflict        409   4
    │   ├── CasMismatch               cas_mismatch    409   4
    │   └── AlreadyInitialized        already_initialized 409 4
    ├── Unavailable                   unavailable     503   5
    │   ├── Sealed                    sealed          503   5
    │   ├── NotInitialized            not_initialized 503   5
    │   ├── AuditUnavailable          audit_unavailable 503 5
    │   ├── StorageUnavailable        storage_unavailable 503 5
    │   └── UnsealSourceFailed        unseal_source_failed 503 5 (HSM or transit)
    ├── IntegrityError                integrity_error 500   8
    ├── RotationFailed                rotation_failed 502   10  (the target refused or failed)
    ├── ConnectionFailed              connection_failed -   7   (client side only)
    └── ServerError                   server_error    500   8

Every error knows its stable ``code`` (persisted in problem documents and relied on by
clients: only ever add), its HTTP status and its CLI exit code. The server maps them to
RFC 9457 problem documents, the SDK maps problem documents back to these classes.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_PREFIX = "urn:keysafe:problem:"


class KeysafeError(Exception):
    """Base of every error keysafe raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 8
    title: ClassVar[str] = "keysafe error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.code

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        doc: dict[str, Any] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


class InvalidInput(KeysafeError):
    code = "invalid_input"
    status = 400
    exit_code = 2
    title = "Invalid input"


class ValueTooLarge(InvalidInput):
    code = "value_too_large"
    status = 413
    title = "Value too large"


class Unauthenticated(KeysafeError):
    code = "unauthenticated"
    status = 401
    exit_code = 6
    title = "Authentication required"


class Forbidden(KeysafeError):
    code = "forbidden"
    status = 403
    exit_code = 1
    title = "Permission denied"


class MfaRequired(Forbidden):
    """The policy wants a recent second factor (step-up) that this session lacks."""

    code = "mfa_required"
    title = "Multi-factor authentication required"


class NotFound(KeysafeError):
    code = "not_found"
    status = 404
    exit_code = 3
    title = "Not found"


class RateLimited(KeysafeError):
    """Too many attempts; ``retry_after`` says when to try again (seconds)."""

    code = "rate_limited"
    status = 429
    exit_code = 9
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class AccountLocked(RateLimited):
    """Too many failed logins for one identity; unlocks after a delay or by an admin."""

    code = "account_locked"
    title = "Account locked"


class Conflict(KeysafeError):
    code = "conflict"
    status = 409
    exit_code = 4
    title = "Conflict"


class CasMismatch(Conflict):
    code = "cas_mismatch"
    title = "Check-and-set failed"


class AlreadyInitialized(Conflict):
    code = "already_initialized"
    title = "Already initialised"


class Unavailable(KeysafeError):
    code = "unavailable"
    status = 503
    exit_code = 5
    title = "Service unavailable"


class Sealed(Unavailable):
    code = "sealed"
    title = "Vault is sealed"


class NotInitialized(Unavailable):
    code = "not_initialized"
    title = "Vault is not initialised"


class AuditUnavailable(Unavailable):
    code = "audit_unavailable"
    title = "Audit trail unavailable"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"
    title = "Storage unavailable"


class UnsealSourceFailed(Unavailable):
    """The auto-unseal source (HSM, transit) failed; ``permanent`` when retrying cannot
    help and may hurt (a wrong PIN: HSMs lock a token after a few)."""

    code = "unseal_source_failed"
    title = "Unseal source failed"

    def __init__(self, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail)
        self.permanent = permanent


class IntegrityError(KeysafeError):
    code = "integrity_error"
    status = 500
    exit_code = 8
    title = "Integrity check failed"


class RotationFailed(KeysafeError):
    """A rotation target (database, Redis, webhook, script) refused or failed a step."""

    code = "rotation_failed"
    status = 502
    exit_code = 10
    title = "Rotation failed"


class ConnectionFailed(KeysafeError):
    code = "connection_failed"
    status = 0
    exit_code = 7
    title = "Cannot reach the keysafe server"


class ServerError(KeysafeError):
    code = "server_error"
    status = 500
    exit_code = 8
    title = "Server error"


# Every concrete class by its stable code; the SDK uses it to rebuild errors from problem
# documents. Codes are persisted in clients' logic: only ever add.
ERRORS_BY_CODE: dict[str, type[KeysafeError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        ValueTooLarge,
        Unauthenticated,
        Forbidden,
        MfaRequired,
        NotFound,
        RateLimited,
        AccountLocked,
        Conflict,
        CasMismatch,
        AlreadyInitialized,
        Unavailable,
        Sealed,
        NotInitialized,
        AuditUnavailable,
        StorageUnavailable,
        IntegrityError,
        RotationFailed,
        ConnectionFailed,
        ServerError,
    )
}


def error_from_problem(doc: dict[str, Any], status: int) -> KeysafeError:
    """Rebuild the error a server reported in a problem document."""
    cls = ERRORS_BY_CODE.get(str(doc.get("code", "")))
    detail = str(doc.get("detail") or doc.get("title") or f"HTTP {status}")
    if cls is None:
        by_status = {
            400: InvalidInput,
            401: Unauthenticated,
            403: Forbidden,
            404: NotFound,
            409: Conflict,
            429: RateLimited,
            413: ValueTooLarge,
            422: InvalidInput,
            503: Unavailable,
        }
        cls = by_status.get(status, ServerError)
    extra = {k: v for k, v in doc.items() if k not in {"type", "title", "status", "detail", "code"}}
    return cls(detail, **extra)
