"""Replies of OAuth (token, introspection, JWKS, signing keys), leak reports, the
scanner's known digests (Vault's replies: ``keysafe.server.replies.vault``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AccessToken(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str
    expires_in: int = Field(description="seconds")
    scope: str


class Introspection(BaseModel):
    """RFC 7662: ``{"active": false}`` for anything invalid, else the token's claims."""

    active: bool


class Jwks(BaseModel):
    """RFC 7517: the public keys that verify access tokens."""

    keys: list[dict[str, Any]]


class SigningKey(BaseModel):
    kid: str


class LeakResult(BaseModel):
    status: str = Field(description="revoked, already_revoked, unknown or not_a_keysafe_credential")
    key_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None


class LeakReportReply(BaseModel):
    """One result per reported credential, in order, and the incident opened for those
    newly revoked (null if none)."""

    results: list[LeakResult]
    incident: str | None


class PartnerFeedback(BaseModel):
    """One entry of the feedback array a signed partner report is answered with."""

    token_hash: str
    token_type: str
    label: str = Field(description="true_positive or false_positive")


class KnownDigest(BaseModel):
    path: str
    version: int
    length: int
    digest: str = Field(description="hex HMAC-SHA256 of the value under the one-time key")


class KnownDigests(BaseModel):
    algorithm: str
    key: str = Field(description="the one-time HMAC key, base64")
    secrets: list[KnownDigest]
