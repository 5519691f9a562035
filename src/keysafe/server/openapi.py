"""The OpenAPI document as the API's contract.

FastAPI derives paths, parameters and bodies from the routes; this module adds what it
cannot know and removes what is not true of keysafe:

- the security schemes (``Authorization: Bearer`` everywhere, Vault's ``X-Vault-Token``
  too) and, per operation, whether a credential is needed (none on public routes);
- the error answers every route can give, as RFC 9457 problem documents on ``/api/v1``
  and Vault's ``{"errors": [...]}`` on ``/v1``, applied to every operation so that routes
  added later are covered without anyone remembering to;
- no 422: validation errors answer 400 (``keysafe.server.problems``);
- stable operation ids (``<tag>_<function>``) and model names without module paths.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from keysafe.bounds import INT64_MAX, INT64_MIN
from keysafe.server import deps

# Every status an error can carry on any route (see ``keysafe.errors``): bad input, no or
# a bad credential, refused, unknown, conflict, body too large, rate limited, sealed or
# audit unavailable. 500 is never documented: it is a bug.
ERROR_STATUSES: dict[str, str] = {
    "400": "Invalid input",
    "401": "Authentication required",
    "403": "Permission denied",
    "404": "Not found",
    "409": "Conflict",
    "413": "Request body too large",
    "429": "Too many requests (see Retry-After)",
    "503": "Sealed, not initialised, or the audit trail is unavailable",
}
# A rotation reaches a target that may refuse (``RotationFailed``).
_EXTRA_ERRORS: dict[str, dict[str, str]] = {
    "/api/v1/rotation/": {"502": "The rotation target refused or failed"},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; ``code`` is keysafe's stable error code.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "urn:keysafe:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "retry_after": {"type": "integer", "description": "seconds (429 only)"},
    },
    "additionalProperties": True,
}
VAULT_ERRORS_SCHEMA: dict[str, Any] = {
    "title": "VaultErrors",
    "description": "Vault's error envelope.",
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "items": {"type": "string"}}},
}
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token, API key (ks_live_...), session (ks_sess_...) or access JWT.",
    },
    "vaultToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Vault-Token",
        "description": "The same credentials, as Vault clients send them.",
    },
}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"vaultToken": []}]


def operation_id(route: APIRoute) -> str:
    """``<first tag>_<function name>``, e.g. ``secrets_read_secret``: stable as long as
    the function keeps its name (clients generated from the document rely on it)."""
    tag = re.sub(r"[^a-z0-9]+", "_", str(route.tags[0]).lower()) if route.tags else "api"
    tag = tag.split("_", 1)[0]  # "vault-compatible" -> "vault"
    return f"{tag}_{route.name}"


class ContractApp(FastAPI):
    """FastAPI whose ``openapi()`` is refined by ``refine`` (once per route table)."""

    _refined: dict[str, Any] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contract_routers: list[APIRouter] = []

    def include_router(self, router: APIRouter, **kwargs: Any) -> None:
        # FastAPI includes routers lazily; keep them to walk their routes.
        self.contract_routers.append(router)
        super().include_router(router, **kwargs)

    def openapi(self) -> dict[str, Any]:
        doc = super().openapi()
        if doc is not self._refined:
            routes = [r for rt in self.contract_routers for r in rt.routes]
            refine(doc, [r for r in routes if isinstance(r, APIRoute)])
            self._refined = doc
        return doc


def requires_credential(route: APIRoute) -> bool:
    """Whether the route refuses anonymous callers: it declares ``deps.authenticated`` or
    a ``deps.needs(...)`` dependency."""
    for dep in route.dependant.dependencies:
        call = dep.call
        if call is deps.authenticated or getattr(call, deps.NEEDS_MARK, False):
            return True
    return False


def refine(doc: dict[str, Any], routes: list[APIRoute]) -> None:
    """Complete ``doc`` (FastAPI's document for ``routes``) in place."""
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["VaultErrors"] = VAULT_ERRORS_SCHEMA
    secured = {
        route.operation_id or operation_id(route): requires_credential(route) for route in routes
    }
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            op["security"] = _SECURED if secured.get(op.get("operationId", ""), False) else []
            _error_responses(path, op)
    _rename_models(doc)
    _integer_bounds(doc)


def _error_responses(path: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    for status, answer in responses.items():
        json_answer = answer.get("content", {}).get("application/json")
        if status.startswith("2") and json_answer is not None and not json_answer.get("schema"):
            # A route without a reply model still answers a JSON object, never anything.
            json_answer["schema"] = {"type": "object"}
    vault = path.startswith("/v1/")
    ref = "#/components/schemas/" + ("VaultErrors" if vault else "Problem")
    media = "application/json" if vault else "application/problem+json"
    statuses = dict(ERROR_STATUSES)
    for prefix, extra in _EXTRA_ERRORS.items():
        if path.startswith(prefix):
            statuses.update(extra)
    for status, description in statuses.items():
        answer = responses.setdefault(status, {"description": description})
        # A route's own declaration of that status (health's 503 body) stands.
        answer.setdefault("content", {}).setdefault(media, {"schema": {"$ref": ref}})


def _rename_models(doc: dict[str, Any]) -> None:
    """``keysafe__server__routes__access__PolicyBody`` -> ``AccessPolicyBody`` (FastAPI
    qualifies names that two modules share), references included."""
    schemas: dict[str, Any] = doc["components"]["schemas"]
    renames: dict[str, str] = {}
    for name in list(schemas):
        if "__" in name:
            parts = name.split("__")
            new = parts[-2].capitalize() + parts[-1]
            if new in schemas or new in renames.values():
                new = "".join(p.capitalize() for p in parts[-3:-1]) + parts[-1]
            renames[name] = new
    if not renames:
        return
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
    refs = {f"#/components/schemas/{o}": f"#/components/schemas/{n}" for o, n in renames.items()}
    _rewrite_refs(doc, refs)


def _rewrite_refs(node: Any, refs: dict[str, str]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref in refs:
                item["$ref"] = refs[ref]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_body(model: type[BaseModel], *, required: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body of a route that reads its
    body itself (so FastAPI cannot see it)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its nested models inlined: a ``#/$defs/...``
    reference would point at the root of the OpenAPI document (models must not be
    recursive)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def form_or_json_body(fields: dict[str, str], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` for OAuth endpoints: form-encoded as RFC 6749 says, or JSON."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "description": d} for name, d in fields.items()},
        "required": required,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }


def _integer_bounds(doc: dict[str, Any]) -> None:
    """FastAPI's document model holds bounds as floats, so ``le=2**63 - 1`` came out as
    ``2**63`` (a value the route refuses); put integer bounds back as exact integers.
    Every integer bound keysafe declares lies within 64 bits."""
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "integer":
                for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                    value = node.get(key)
                    if isinstance(value, float):
                        node[key] = max(INT64_MIN, min(INT64_MAX, int(value)))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
