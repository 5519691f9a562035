"""The OpenAPI document is the API's contract: valid OpenAPI 3.1, every operation with a
stable id, its security and its error answers; the docs ship with the package and stay
readable while sealed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from vaultkit import Vault

from keysafe.bounds import INT64_MAX
from keysafe.server.app import create_app, with_fast_paths
from keysafe.server.openapi import ERROR_STATUSES
from keysafe.server.replies import (
    access,
    alerts,
    exchange,
    incidents,
    leases,
    monitor,
    people,
    rotation,
    tokens,
)
from keysafe.server.replies import (
    vault as vault_replies,
)

pytestmark = pytest.mark.anyio

# Routes that answer without a credential (their own checks aside).
PUBLIC = {
    "sys_health",
    "sys_seal_status",
    "sys_init",
    "sys_unseal",
    "sys_generate_root",
    "leaks_report_leaks",
    "oauth_token",
    "oauth_jwks",
    "oauth_revoke",
    "vault_health",
    "vault_seal_status",
    "vault_approle_login",
    "vault_init_status",
    "vault_leader",
    "people_login",
}
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {vault.root_token}"},
    ) as c:
        yield c


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def _unbounded_integers(doc: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Integer inputs without a 64-bit maximum, anywhere in ``schema``."""
    found: list[str] = []
    stack = [(schema, where)]
    seen: set[int] = set()
    while stack:
        node, at = stack.pop()
        node = _resolve(doc, node)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.get("type") == "integer" and node.get("maximum", INT64_MAX + 1) > INT64_MAX:
            found.append(at)
        for key in ("anyOf", "oneOf", "allOf"):
            stack.extend((s, at) for s in node.get(key, []))
        if isinstance(node.get("items"), dict):
            stack.append((node["items"], f"{at}[]"))
        for name, sub in node.get("properties", {}).items():
            stack.append((sub, f"{at}.{name}"))
    return found


async def test_document_is_valid_openapi_31_and_complete(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["vaultToken"]["name"] == "X-Vault-Token"
    assert not [n for n in doc["components"]["schemas"] if "__" in n or "Validation" in n]
    ids: set[str] = set()
    public: set[str] = set()
    unbounded: list[str] = []
    for path, method, op in _operations(doc):
        where = f"{method.upper()} {path}"
        op_id = op["operationId"]
        assert re.fullmatch(r"[a-z]+_[a-z0-9_]+", op_id), where
        assert op_id not in ids, where
        ids.add(op_id)
        assert "security" in op, where
        if not op["security"]:
            public.add(op_id)
        responses = op["responses"]
        assert "422" not in responses, where
        media = "application/json" if path.startswith("/v1/") else "application/problem+json"
        for status in ERROR_STATUSES:
            assert media in responses[status]["content"], (where, status)
        for status, answer in responses.items():
            if status.startswith("2"):
                for content in answer.get("content", {}).values():
                    assert content.get("schema"), (where, status, "has an empty schema")
        for param in op.get("parameters", []):
            unbounded += _unbounded_integers(doc, param["schema"], f"{where} ?{param['name']}")
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            unbounded += _unbounded_integers(doc, body["schema"], f"{where} body")
    assert public == PUBLIC
    assert not unbounded, f"integer inputs without a 64-bit bound: {unbounded}"
    # Every success status a route sends is documented (a dry run answers 200, not 201).
    assert {"200", "201"} <= doc["paths"]["/api/v1/incidents"]["post"]["responses"].keys()
    # One operation per verb.
    assert "/api/v1/secrets/{path}:rollback" in doc["paths"]
    assert "/api/v1/keys/{key_id}:suspend" in doc["paths"]
    assert doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"].keys() == {"text/plain"}


# 2xx JSON replies documented as a bare object: only maps whose keys are the caller's own
# data may stay free-form (operation id -> why). Every other reply names its fields.
FREE_FORM_REPLIES: dict[str, str] = {}


def _bare_object(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that says nothing but "an object" (after following one reference)."""
    schema = _resolve(doc, schema)
    if any(k in schema for k in ("oneOf", "anyOf", "allOf", "items", "properties")):
        return False
    return schema.get("type", "object") == "object" and not schema.get("additionalProperties")


async def test_every_json_reply_names_its_fields(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    bare: list[str] = []
    for path, method, op in _operations(doc):
        for status, answer in op["responses"].items():
            json_answer = answer.get("content", {}).get("application/json")
            if not status.startswith("2") or json_answer is None:
                continue
            if _bare_object(doc, json_answer["schema"]) and op["operationId"] not in (
                FREE_FORM_REPLIES
            ):
                bare.append(f"{method.upper()} {path} {status}")
    assert not bare, f"replies documented only as an object: {bare}"
    # A reply model is documentation only: the routes still answer their full documents.
    listed = doc["paths"]["/api/v1/tokens"]["get"]["responses"]["200"]["content"]
    token_list = _resolve(doc, listed["application/json"]["schema"])
    assert token_list["properties"]["tokens"]["items"] == {
        "$ref": "#/components/schemas/TokenRecord"
    }
    # 204 answers carry no body, hence no model.
    removed = doc["paths"]["/api/v1/rotation/targets/{target_id}"]["delete"]["responses"]
    assert "content" not in removed["204"]
    assert "200" not in removed


def _checker(client: httpx.AsyncClient) -> Any:
    """``check(Model, method, url, **kw)``: the answer, a 2xx, validated by ``Model``."""

    async def check(model: type[BaseModel], method: str, url: str, **kw: Any) -> Any:
        answer = await client.request(method, url, **kw)
        assert answer.is_success, (url, answer.text)
        return model.model_validate(answer.json())

    return check


async def test_reply_models_match_real_answers(client: httpx.AsyncClient) -> None:
    """Schemathesis checks replies against the document too, but rarely reaches a 2xx
    past the routes' checks: walk one real answer of each kind through its model
    (extra fields pass, a missing or mistyped documented field fails)."""

    check = _checker(client)
    policy = '[[rule]]\npath = "app/*"\ncapabilities = ["read"]\n'
    await check(access.PolicyWritten, "PUT", "/api/v1/policies/app", json={"text": policy})
    await check(access.PolicyRecord, "GET", "/api/v1/policies/app")
    await check(access.PolicyList, "GET", "/api/v1/policies")
    check_body = {"policies": ["app"], "path": "app/x", "capability": "read"}
    await check(access.PolicyCheckReply, "POST", "/api/v1/policy-check", json=check_body)
    await check(access.ServiceRecord, "POST", "/api/v1/services", json={"name": "web"})
    await check(access.ServiceList, "GET", "/api/v1/services")
    key = await check(access.KeyIssued, "POST", "/api/v1/keys", json={"service": "web"})
    await check(access.KeyRecord, "GET", f"/api/v1/keys/{key.id}")
    await check(access.KeyList, "GET", "/api/v1/keys")
    await check(access.KeyRecord, "POST", f"/api/v1/keys/{key.id}:suspend", json={})
    await check(access.KeyRecord, "POST", f"/api/v1/keys/{key.id}:resume")
    await check(access.KeyIssued, "POST", f"/api/v1/keys/{key.id}:roll", json={"grace": "1h"})
    await check(monitor.UsageReport, "GET", f"/api/v1/keys/{key.id}/usage")

    issued = await check(
        tokens.TokenIssued, "POST", "/api/v1/tokens", json={"prefix": "app/", "ttl_seconds": 60}
    )
    await check(tokens.TokenList, "GET", "/api/v1/tokens")
    assert (await check(tokens.TokenSelf, "GET", "/api/v1/tokens/self")).kind
    own = {"Authorization": f"Bearer {issued.token}"}
    assert (await check(tokens.TokenSelf, "GET", "/api/v1/tokens/self", headers=own)).kind
    await check(tokens.MemberList, "GET", "/api/v1/sys/members")

    await check(people.RoleWritten, "PUT", "/api/v1/roles/dev", json={"policies": ["app"]})
    await check(people.RoleList, "GET", "/api/v1/roles")
    password = "a long contract password"
    user = {"name": "ada", "password": password, "roles": ["dev"]}
    await check(people.UserRecord, "POST", "/api/v1/users", json=user)
    await check(people.UserRecord, "GET", "/api/v1/users/ada")
    await check(people.UserList, "GET", "/api/v1/users")
    await check(people.UserRecord, "PUT", "/api/v1/users/ada/roles", json={"roles": ["dev"]})
    login = {"name": "ada", "password": password}
    session = await check(people.LoginReply, "POST", "/api/v1/auth/login", json=login)
    who = await check(
        people.WhoAmI,
        "GET",
        "/api/v1/auth/self",
        headers={"Authorization": f"Bearer {session.token}"},
    )
    assert who.session is not None
    await check(people.SessionList, "GET", "/api/v1/users/ada/sessions")
    await check(people.SessionsRevoked, "DELETE", "/api/v1/users/ada/sessions")
    await check(people.UserDisabled, "POST", "/api/v1/users/ada/disable")
    await check(people.UserDisabled, "POST", "/api/v1/users/ada/enable")

    await check(alerts.AlertList, "GET", "/api/v1/alerts")
    await check(alerts.HookList, "GET", "/api/v1/alerts/hooks")
    await check(alerts.DeadLetterList, "GET", "/api/v1/alerts/dead-letters")
    await check(incidents.IncidentList, "GET", "/api/v1/incidents")
    # A wildcard policy, a key without expiry and a person without MFA fill every list.
    wild = '[[rule]]\npath = "*"\ncapabilities = ["list"]\n'
    await check(access.PolicyWritten, "PUT", "/api/v1/policies/wild", json={"text": wild})
    compliance = await check(incidents.ComplianceReport, "GET", "/api/v1/report")
    assert compliance.wildcard_policies == ["wild"]
    assert compliance.keys
    assert compliance.people_without_mfa
    await check(monitor.AuditEventList, "GET", "/api/v1/audit/events")
    await check(monitor.AuditVerifyReply, "POST", "/api/v1/audit/verify")
    await check(rotation.RotationPolicyList, "GET", "/api/v1/rotation/policies")
    await check(rotation.RotationTargetList, "GET", "/api/v1/rotation/targets")
    await check(leases.LeaseList, "GET", "/api/v1/leases")
    await check(leases.CredsRoleList, "GET", "/api/v1/creds/roles")


async def test_reply_models_match_real_answers_of_rarer_routes(
    client: httpx.AsyncClient,
) -> None:
    """Incidents, rotation, hooks, OAuth, leak reports, digests and Vault metadata."""

    check = _checker(client)
    await client.put("/api/v1/secrets/app/db", json={"value": "s3cret-value"})
    await check(vault_replies.KvMetadata, "GET", "/v1/secret/metadata/app/db")
    await check(vault_replies.KvRead, "GET", "/v1/secret/data/app/db")
    await check(vault_replies.TokenLookup, "GET", "/v1/auth/token/lookup-self")
    await check(vault_replies.Mounts, "GET", "/v1/sys/mounts")
    await check(exchange.KnownDigests, "POST", "/api/v1/scan/known-digests", json={})
    policy = {"rotator": "random", "every_seconds": 3600}
    where = "/api/v1/rotation/policies/app/db"
    await check(rotation.RotationPolicyDetail, "PUT", where, json=policy)
    await check(rotation.RotationPolicyDetail, "GET", "/api/v1/rotation/policies/app/db")
    await check(rotation.RotationRun, "POST", "/api/v1/rotation/rotate/app/db")
    compliance = await check(incidents.ComplianceReport, "GET", "/api/v1/report")
    assert compliance.secrets[0].rotation is not None
    hook = {"url": "http://127.0.0.1:9/hook", "secret": "a signing secret of some length"}
    await check(alerts.HookRecord, "POST", "/api/v1/alerts/hooks", json=hook)

    await client.post("/api/v1/services", json={"name": "api"})
    key = await check(access.KeyIssued, "POST", "/api/v1/keys", json={"service": "api"})
    grant = {"grant_type": "client_credentials", "client_secret": key.key}
    jwt = await check(exchange.AccessToken, "POST", "/api/v1/oauth/token", data=grant)
    seen = await check(
        exchange.Introspection, "POST", "/api/v1/oauth/introspect", data={"token": jwt.access_token}
    )
    assert seen.active
    await check(exchange.Jwks, "GET", "/.well-known/jwks.json")
    await check(exchange.SigningKey, "POST", "/api/v1/sys/rotate-signing-key")

    plan = {"keys": [key.id], "dry_run": True}
    await check(incidents.IncidentPlan, "POST", "/api/v1/incidents", json=plan)
    opened = await check(
        incidents.IncidentRecord, "POST", "/api/v1/incidents", json={"keys": [key.id]}
    )
    await check(incidents.IncidentDetail, "GET", f"/api/v1/incidents/{opened.id}")
    await check(incidents.IncidentReport, "GET", f"/api/v1/incidents/{opened.id}/report")
    await check(incidents.IncidentRecord, "POST", f"/api/v1/incidents/{opened.id}/close")

    leaked = await check(
        tokens.TokenIssued, "POST", "/api/v1/tokens", json={"prefix": "app/", "ttl_seconds": 60}
    )
    report = {"credentials": [{"credential": leaked.token, "location": "https://example.test/x"}]}
    answer = await client.post("/api/v1/leaks", json=report, headers={"Authorization": ""})
    assert answer.is_success, answer.text
    assert exchange.LeakReportReply.model_validate(answer.json()).results[0].status == "revoked"


async def test_docs_are_served_from_the_package_with_a_strict_csp(
    client: httpx.AsyncClient, vault: Vault
) -> None:
    await client.post("/api/v1/sys/seal")
    assert vault.svc.barrier.sealed
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "default-src 'none'" in csp
    # Every script and stylesheet comes from this origin: nothing from a CDN.
    assert not re.findall(r"(?:src|href)=\"(?!/api/v1/docs)", page.text)
    assert "<script>" not in page.text  # no inline script
    for asset in ("/api/v1/docs/start.js", "/api/v1/docs/assets/swagger-ui-bundle.js"):
        got = await client.get(asset)
        assert got.status_code == 200, asset
        assert got.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/api/v1/docs/assets/swagger-ui.css")).status_code == 200
    for other in ("index.html", "..%2F..%2Fopenapi.json", "swagger-ui.js.map"):
        assert (await client.get(f"/api/v1/docs/assets/{other}")).status_code == 404, other
    assert (await client.get("/api/v1/openapi.json")).status_code == 200  # while sealed
    assert (await client.get("/api/v1/secrets")).status_code == 503
    unseal = await client.post("/api/v1/sys/unseal", json={"key": vault.unseal_key})
    assert unseal.status_code == 200, unseal.text


async def test_secret_answers_are_not_cached_and_405_names_allowed_methods(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/api/v1/secrets/app/K", json={"value": "v"})).status_code == 200
    assert (
        await client.put("/v1/secret/data/app/KV", json={"data": {"a": "b"}})
    ).status_code == 200
    for url in (
        "/api/v1/secrets/app/K",
        "/api/v1/secrets/app/K?label=current",
        "/v1/secret/data/app/KV",
    ):
        got = await client.get(url)
        assert got.status_code == 200, url
        assert got.headers["cache-control"] == "no-store", url
    created = await client.post("/api/v1/tokens", json={"ttl_seconds": 60})
    assert created.headers["cache-control"] == "no-store"
    wrong = await client.put("/api/v1/tokens/self")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.json()["code"] == "method_not_allowed"


async def test_one_route_per_verb_keeps_the_old_answers(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/secrets/app/V", json={"value": "a"})
    await client.put("/api/v1/secrets/app/V", json={"value": "b"})
    rolled = await client.post("/api/v1/secrets/app/V:rollback", json={"version": 1})
    assert rolled.json()["version"] == 3
    assert (await client.get("/api/v1/secrets/app/V:history")).json()["current_version"] == 3
    assert (
        await client.post("/api/v1/secrets/app/V:destroy", json={"versions": [2]})
    ).status_code == 204
    assert (await client.delete("/api/v1/secrets/app/V")).status_code == 204
    assert (await client.post("/api/v1/secrets/app/V:undelete")).status_code == 204
    assert (await client.get("/api/v1/secrets/app/V")).json()["value"] == "a"
    unknown = await client.post("/api/v1/secrets/app/V:explode")
    assert unknown.status_code == 404
    assert (await client.post("/api/v1/secrets/app/V")).status_code == 404
    assert (await client.get("/api/v1/secrets/app/V:explode")).status_code in (400, 404)
