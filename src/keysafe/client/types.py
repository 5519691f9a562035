"""The shapes of the server's JSON replies, as the SDK's admin methods return them.

Generated from keysafe.server.replies by scripts/gen_sdk_types.py: do not edit. Each is
a ``TypedDict``: a plain dict at run time (fields the server adds later are kept), typed
for mypy and editors; ``NotRequired`` fields may be absent from a reply.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "AccessToken",
    "AlertList",
    "AlertRecord",
    "AuditChainReport",
    "AuditEventList",
    "AuditEventRecord",
    "AuditPlace",
    "AuditVerifyReply",
    "ComplianceCharts",
    "ComplianceKey",
    "CompliancePerson",
    "ComplianceReport",
    "ComplianceRotation",
    "ComplianceSecret",
    "ComplianceSummary",
    "ComplianceToken",
    "CredsRole",
    "CredsRoleList",
    "DeadLetter",
    "DeadLetterList",
    "HookList",
    "HookRecord",
    "IncidentDetail",
    "IncidentItem",
    "IncidentList",
    "IncidentNote",
    "IncidentPlan",
    "IncidentRecord",
    "IncidentReport",
    "IncidentStep",
    "IncidentSummary",
    "Introspection",
    "IssuedLogin",
    "Jwks",
    "KeyIssued",
    "KeyList",
    "KeyRecord",
    "KnownDigest",
    "KnownDigests",
    "LeakReportReply",
    "LeakResult",
    "LeaseList",
    "LeaseRecord",
    "LeaseRenewed",
    "LeaseRevoked",
    "LoginReply",
    "Member",
    "MemberList",
    "MfaReply",
    "PartnerFeedback",
    "PolicyCheckReply",
    "PolicyList",
    "PolicyRecord",
    "PolicyWritten",
    "PrefixRevoked",
    "RecoveryCodes",
    "RoleList",
    "RoleRecord",
    "RoleWritten",
    "RootToken",
    "RotationPolicyDetail",
    "RotationPolicyList",
    "RotationPolicyStatus",
    "RotationRun",
    "RotationTarget",
    "RotationTargetList",
    "RuleOutcome",
    "ServiceList",
    "ServiceRecord",
    "SessionInfo",
    "SessionList",
    "SessionsRevoked",
    "SigningKey",
    "TimelineEntry",
    "TokenIssued",
    "TokenList",
    "TokenRecord",
    "TokenSelf",
    "TotpEnrolment",
    "UsageCounts",
    "UsageDay",
    "UsageReport",
    "UserDisabled",
    "UserList",
    "UserRecord",
    "WhoAmI",
]


class PolicyWritten(TypedDict):
    name: str
    rules: int
    updated_at: str | None


class PolicyList(TypedDict):
    policies: list[PolicyWritten]


class PolicyRecord(TypedDict):
    name: str
    text: str
    updated_at: str | None
    updated_by: str | None


class RuleOutcome(TypedDict):
    rule: str
    applies: bool
    note: str


class PolicyCheckReply(TypedDict):
    allowed: bool
    reason: str | None
    deciding_rule: str | None
    mfa_required_within_minutes: int | None
    rules: list[RuleOutcome]


class ServiceRecord(TypedDict):
    id: str
    name: str
    description: str
    policies: list[str]
    created_at: str | None
    disabled: bool


class ServiceList(TypedDict):
    services: list[ServiceRecord]


class KeyRecord(TypedDict):
    """An API key without its hash (``access.apikeys.public_key_record``)."""

    id: str
    prefix: str
    key_space: str
    service_id: str
    description: str
    policies: list[str]
    cidrs: list[str]
    rate_limit: str | None
    created_at: str | None
    created_by: str | None
    expires_at: str | None
    revoked: bool
    suspended: bool
    suspended_at: str | None
    suspended_reason: str | None
    grace_until: str | None
    replaced_by: str | None
    last_used_at: str | None
    last_used_from: str | None
    use_count: int


class KeyIssued(KeyRecord):
    """Shown once: the new key with its secret."""

    key: str


class KeyList(TypedDict):
    keys: list[KeyRecord]


class HookRecord(TypedDict):
    """A hook without its sealed signing secret."""

    id: str
    kind: str
    target: str
    description: str
    signed: bool
    created_at: str | None
    created_by: str


class HookList(TypedDict):
    hooks: list[HookRecord]


class DeadLetter(TypedDict):
    id: str
    alert_id: str
    channel: str
    hook_id: str | None
    target: str
    status: str
    attempts: int
    last_error: str
    created_at: str | None
    next_at: str | None
    done_at: str | None


class DeadLetterList(TypedDict):
    dead_letters: list[DeadLetter]


class AlertRecord(TypedDict):
    """An alert as the API shows it and hooks receive it (evidence holds counts,"""

    id: str
    kind: str
    severity: str
    actor: str
    evidence: dict[str, Any]
    first_at: str | None
    last_at: str | None
    count: int
    status: str
    action: str
    action_result: str
    acked_by: str | None
    acked_at: str | None


class AlertList(TypedDict):
    alerts: list[AlertRecord]


class AccessToken(TypedDict):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str


class Introspection(TypedDict):
    """RFC 7662: ``{"active": false}`` for anything invalid, else the token's claims."""

    active: bool


class Jwks(TypedDict):
    """RFC 7517: the public keys that verify access tokens."""

    keys: list[dict[str, Any]]


class SigningKey(TypedDict):
    kid: str


class LeakResult(TypedDict):
    status: str
    key_id: NotRequired[str | None]
    token_id: NotRequired[str | None]
    session_id: NotRequired[str | None]


class LeakReportReply(TypedDict):
    """One result per reported credential, in order, and the incident opened for those"""

    results: list[LeakResult]
    incident: str | None


class PartnerFeedback(TypedDict):
    """One entry of the feedback array a signed partner report is answered with."""

    token_hash: str
    token_type: str
    label: str


class KnownDigest(TypedDict):
    path: str
    version: int
    length: int
    digest: str


class KnownDigests(TypedDict):
    algorithm: str
    key: str
    secrets: list[KnownDigest]


class IncidentItem(TypedDict):
    """One leaked thing: its id or path, never its value."""

    kind: str
    ref: str
    note: str


class IncidentStep(TypedDict):
    time: str | None
    phase: str
    action: str
    target: str
    actor: str
    outcome: str
    detail: str


class IncidentNote(TypedDict):
    target: str
    outcome: str
    detail: str


class TimelineEntry(TypedDict):
    time: str | None
    kind: str
    what: str
    target: str
    actor: str
    outcome: str
    detail: str


class IncidentRecord(TypedDict):
    id: str
    title: str
    status: str
    source: str
    opened_at: str | None
    opened_by: str
    closed_at: str | None
    closed_by: str | None
    items: list[IncidentItem]
    steps: list[IncidentStep]


class IncidentDetail(IncidentRecord):
    timeline: list[TimelineEntry]


class IncidentReport(IncidentDetail):
    generated_at: str | None
    follow_ups: list[IncidentStep]


class IncidentPlan(TypedDict):
    """A dry run: what the playbook would do; nothing was done."""

    dry_run: bool
    items: list[IncidentItem]
    notes: list[IncidentNote]
    plan: list[IncidentStep]


class IncidentSummary(TypedDict):
    id: str
    title: str
    status: str
    source: str
    opened_at: str | None
    opened_by: str
    closed_at: str | None
    items: int


class IncidentList(TypedDict):
    incidents: list[IncidentSummary]


class ComplianceRotation(TypedDict):
    rotator: str
    every_days: float
    last_run_at: str | None
    last_outcome: str | None
    next_due: str | None


class ComplianceSecret(TypedDict):
    path: str
    version: int
    created_at: str | None
    age_days: int
    last_changed_at: str | None
    days_since_change: int
    expires_at: str | None
    expired: bool
    expiring: bool
    rotation: ComplianceRotation | None
    rotation_overdue: bool


class ComplianceKey(TypedDict):
    id: str
    prefix: str
    service: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    policies: list[str]
    cidrs: list[str]
    risks: list[str]
    expiring: bool


class ComplianceToken(TypedDict):
    id: str
    kind: str
    mode: str
    prefix: str
    created_at: str | None


class CompliancePerson(TypedDict):
    name: str
    roles: list[str]
    last_login_at: str | None


class ComplianceSummary(TypedDict):
    secrets: int
    secrets_expired: int
    secrets_expiring: int
    rotations_overdue: int
    secrets_without_rotation: int
    keys: int
    keys_without_expiry: int
    keys_without_address_limit: int
    keys_with_wildcard_policy: int
    keys_unused: int
    keys_expiring: int
    tokens_without_expiry: int
    people_without_mfa: int


class ComplianceCharts(TypedDict):
    secret_age_days: dict[str, int]
    keys_by_risk: dict[str, int]


class ComplianceReport(TypedDict):
    """The compliance report (``GET /api/v1/report``, JSON)."""

    generated_at: str | None
    unused_days: int
    expiring_days: int
    summary: ComplianceSummary
    secrets: list[ComplianceSecret]
    keys: list[ComplianceKey]
    tokens_without_expiry: list[ComplianceToken]
    wildcard_policies: list[str]
    people_without_mfa: list[CompliancePerson] | None
    charts: ComplianceCharts


class CredsRole(TypedDict):
    name: str
    engine: str
    connection_secret: str
    grants: list[str]
    ttl: int
    max_ttl: int


class CredsRoleList(TypedDict):
    roles: list[CredsRole]


class IssuedLogin(TypedDict):
    """Shown once: a new login and its lease."""

    lease_id: str
    role: str
    username: str
    password: str
    expires_at: str | None
    max_expires_at: str | None
    ttl: int
    warnings: list[str]


class LeaseRecord(TypedDict):
    lease_id: str
    role: str
    username: str
    state: str
    created_at: str | None
    created_by: str
    expires_at: str | None
    max_expires_at: str | None
    revoked_at: str | None
    revoke_error: str | None
    attempts: int


class LeaseList(TypedDict):
    leases: list[LeaseRecord]


class LeaseRevoked(LeaseRecord):
    already: bool


class LeaseRenewed(TypedDict):
    lease_id: str
    expires_at: str | None
    max_expires_at: str | None
    ttl: int
    capped: bool
    warnings: list[str]


class PrefixRevoked(TypedDict):
    prefix: str
    revoked: int
    failed: int


class AuditPlace(TypedDict):
    seq: int
    ts: NotRequired[int | None]


class AuditChainReport(TypedDict):
    chain: str
    node: str
    events: int
    ok: bool
    first: NotRequired[AuditPlace | None]
    last: NotRequired[AuditPlace | None]
    first_bad: NotRequired[int | None]
    bad_seq: NotRequired[int | None]
    reason: NotRequired[str | None]


class AuditVerifyReply(TypedDict):
    ok: bool
    events: int
    first_bad: NotRequired[int | None]
    reason: NotRequired[str | None]
    chain: NotRequired[str | None]
    chains: NotRequired[list[AuditChainReport]]


class AuditEventRecord(TypedDict):
    seq: int
    ts: int
    request_id: str
    actor: str
    source: str
    operation: str
    path: str
    outcome: str
    detail: str
    node: str
    prev_hash: str
    hash: str
    chain: NotRequired[str | None]
    chain_seq: NotRequired[int | None]


class AuditEventList(TypedDict):
    events: list[AuditEventRecord]


class UsageCounts(TypedDict):
    requests: int
    ok: int
    denied: int
    limited: int
    errors: int


class UsageDay(UsageCounts):
    date: str


class UsageReport(TypedDict):
    kind: str
    id: str
    days: int
    first_used_at: str | None
    last_used_at: str | None
    totals: UsageCounts
    per_day: list[UsageDay]
    sources: list[str]
    paths: list[str]
    actors: list[str]
    item_limits: dict[str, int]


class SessionInfo(TypedDict):
    """A session without its hash (``access.sessions.public_session``)."""

    id: str
    created_at: str | None
    last_seen_at: str | None
    expires_at: str | None
    mfa_at: str | None
    revoked: bool
    source: str | None


class LoginReply(TypedDict):
    token: str
    name: str
    mfa: bool
    session: SessionInfo


class MfaReply(TypedDict):
    mfa: bool


class TotpEnrolment(TypedDict):
    """Shown once: the second factor's secret."""

    otpauth_uri: str
    secret: str


class RecoveryCodes(TypedDict):
    """Shown once."""

    recovery_codes: list[str]


class WhoAmI(TypedDict):
    actor: str
    kind: str
    policies: list[str]
    name: NotRequired[str | None]
    roles: NotRequired[list[str] | None]
    mfa_enrolled: NotRequired[bool | None]
    session: NotRequired[SessionInfo | None]


class UserRecord(TypedDict):
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


class UserList(TypedDict):
    users: list[UserRecord]


class UserDisabled(TypedDict):
    disabled: bool
    sessions_revoked: NotRequired[int | None]


class SessionList(TypedDict):
    sessions: list[SessionInfo]


class SessionsRevoked(TypedDict):
    revoked: int


class RoleWritten(TypedDict):
    name: str
    policies: list[str]
    updated_at: str | None


class RoleRecord(RoleWritten):
    users: int


class RoleList(TypedDict):
    roles: list[RoleRecord]


class RotationRun(TypedDict):
    """A run as the API shows it (never the pending value)."""

    id: str
    path: str
    rotator: str
    trigger: str
    step: str
    outcome: str | None
    previous_version: int | None
    new_version: int | None
    started_at: str | None
    finished_at: str | None
    error: str | None


class RotationPolicyStatus(TypedDict):
    """Schedule, last run, outcome and work in flight of one secret's policy."""

    path: str
    rotator: str
    options: dict[str, str]
    every_seconds: int
    grace_seconds: int
    next_due: str | None
    due: bool
    running: bool
    in_flight_run: str | None
    retire_at: str | None
    failures: int
    last_run: str | None
    last_run_at: str | None
    last_outcome: str | None
    last_error: str | None
    updated_at: str | None
    updated_by: str


class RotationPolicyDetail(RotationPolicyStatus):
    runs: list[RotationRun]


class RotationPolicyList(TypedDict):
    policies: list[RotationPolicyStatus]


class RotationTarget(TypedDict):
    id: str
    kind: str
    host: str
    port: int
    database: str
    roles: list[str]
    target: str
    created_at: str | None
    created_by: str


class RotationTargetList(TypedDict):
    targets: list[RotationTarget]


class TokenRecord(TypedDict):
    """A token without its hash (``access.service.public_record``)."""

    id: str
    kind: str
    prefix: str
    mode: str
    description: str
    created_by: str | None
    created_at: str | None
    expires_at: str | None
    revoked: bool
    policies: list[str]


class TokenIssued(TokenRecord):
    """Shown once: the new token with its secret."""

    token: str


class TokenList(TypedDict):
    tokens: list[TokenRecord]


class TokenSelf(TypedDict):
    """The caller's own credential: a token record, an API key (``/api/v1/keys/{id}``),"""

    id: str
    kind: NotRequired[str | None]
    policies: NotRequired[list[str] | None]
    expires_at: NotRequired[str | None]
    mfa_at: NotRequired[str | None]


class Member(TypedDict):
    id: str
    address: str
    version: str
    pid: int
    sealed: bool
    status: str
    started_at: int
    heartbeat_at: int


class MemberList(TypedDict):
    members: list[Member]


class RootToken(TypedDict):
    root_token: str
