"""Replies of ``/api/v1/auth``, ``/api/v1/users`` and ``/api/v1/roles``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SessionInfo(BaseModel):
    """A session without its hash (``access.sessions.public_session``)."""

    id: str
    created_at: str | None
    last_seen_at: str | None
    expires_at: str | None
    mfa_at: str | None
    revoked: bool
    source: str | None


class LoginReply(BaseModel):
    token: str = Field(description="the session token (ks_sess_...), in this reply only")
    name: str
    mfa: bool
    session: SessionInfo


class MfaReply(BaseModel):
    mfa: bool


class TotpEnrolment(BaseModel):
    """Shown once: the second factor's secret."""

    otpauth_uri: str
    secret: str


class RecoveryCodes(BaseModel):
    """Shown once."""

    recovery_codes: list[str]


class WhoAmI(BaseModel):
    actor: str
    kind: str
    policies: list[str]
    name: str | None = Field(None, description="sessions only, as are the fields below")
    roles: list[str] | None = None
    mfa_enrolled: bool | None = None
    session: SessionInfo | None = None


class UserRecord(BaseModel):
    """A user without hashes or secrets."""

    id: str
    name: str
    roles: list[str]
    mfa: bool
    locked_until: str | None
    failed_logins: int
    disabled: bool
    created_at: str | None
    created_by: str | None
    last_login_at: str | None
    last_login_from: str | None


class UserList(BaseModel):
    users: list[UserRecord]


class UserDisabled(BaseModel):
    disabled: bool
    sessions_revoked: int | None = Field(None, description="on disable only")


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class SessionsRevoked(BaseModel):
    revoked: int


class RoleWritten(BaseModel):
    name: str
    policies: list[str]
    updated_at: str | None


class RoleRecord(RoleWritten):
    users: int = Field(description="how many users hold the role")


class RoleList(BaseModel):
    roles: list[RoleRecord]
