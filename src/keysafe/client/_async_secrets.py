"""Generated from _sync_secrets.py by scripts/gen_async_client.py: do not edit.

The methods of the async client; see that file for what each one does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from keysafe.client._async_core import AsyncCore
from keysafe.client._durations import Duration, seconds
from keysafe.client._models import (
    IssuedToken,
    Secret,
    SecretEntry,
    SecretHistory,
    SecretMetadata,
    TokenInfo,
)
from keysafe.client._paths import check_path
from keysafe.client._wire import API, flag, secret_url, segment
from keysafe.errors import Unauthenticated

if TYPE_CHECKING:
    from keysafe.client.types import AccessToken


class AsyncSecrets(AsyncCore):
    async def get_secret(self, path: str, version: int | None = None) -> Secret:
        """The current (or the given) version of ``path``. Raises NotFound, Forbidden...

        The current version comes from the cache while it is younger than ``cache_ttl``;
        a given ``version`` is always fetched (old versions are rare reads)."""
        path = check_path(path)
        if version is not None:
            return await self._fetch_secret(path, version)
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        sent = self._cache.now()
        secret = await self._fetch_secret(path, None)
        self._cache.put(secret, sent)
        return secret

    async def get(self, path: str) -> str:
        """Just the current value of ``path`` (cached, see ``get_secret``)."""
        secret = await self.get_secret(path)
        return secret.value

    async def refresh(self, path: str) -> str:
        """The current value of ``path`` fetched now, bypassing and then refilling the
        cache. Raises what ``get`` raises."""
        path = check_path(path)
        sent = self._cache.now()
        secret = await self._fetch_secret(path, None)
        self._cache.put(secret, sent, force=True)
        return secret.value

    async def _fetch_secret(self, path: str, version: int | None) -> Secret:
        params = {"version": str(version)} if version is not None else None
        doc = await self._json("GET", secret_url(path), params=params)
        secret = Secret.from_json(doc)
        self._saw(secret)
        return secret

    async def put_secret(self, path: str, value: str, cas: int | None = None) -> int:
        """Write a new version and return its number; ``cas`` raises CasMismatch on a race."""
        body: dict[str, Any] = {"value": value}
        if cas is not None:
            body["cas"] = cas
        self._cache.drop(check_path(path))
        doc = await self._json("PUT", secret_url(path), json=body)
        return int(doc["version"])

    async def list_secrets(
        self, prefix: str = "", recursive: bool = True, values: bool = False
    ) -> list[SecretEntry]:
        """Secrets under ``prefix``; values only when ``values`` (needs read on each)."""
        params = {"prefix": prefix, "recursive": flag(recursive), "values": flag(values)}
        doc = await self._json("GET", f"{API}/secrets", params=params)
        entries = [SecretEntry.from_json(item) for item in doc.get("secrets", [])]
        for entry in entries:
            self._saw(entry)
        return entries

    async def history(self, path: str) -> SecretHistory:
        doc = await self._json("GET", secret_url(path, ":history"))
        return SecretHistory.from_json(doc)

    async def rollback(self, path: str, version: int) -> int:
        """Make ``version`` current again (as a new version, whose number is returned)."""
        self._cache.drop(check_path(path))
        doc = await self._json("POST", secret_url(path, ":rollback"), json={"version": version})
        return int(doc["version"])

    async def delete(self, path: str, version: int | None = None) -> None:
        """Soft-delete the latest (or the given) version; ``undelete`` brings it back."""
        params = {"version": str(version)} if version is not None else None
        self._cache.drop(check_path(path))
        await self._request("DELETE", secret_url(path), params=params)

    async def undelete(self, path: str, versions: Sequence[int] | None = None) -> None:
        body = {"versions": list(versions)} if versions else {}
        self._cache.drop(check_path(path))
        await self._request("POST", secret_url(path, ":undelete"), json=body)

    async def destroy(self, path: str, versions: Sequence[int]) -> None:
        """Wipe the ciphertext of ``versions`` for good; metadata stays."""
        self._cache.drop(check_path(path))
        await self._request("POST", secret_url(path, ":destroy"), json={"versions": list(versions)})

    async def metadata(self, path: str) -> SecretMetadata:
        doc = await self._json("GET", secret_url(path, ":metadata"))
        return SecretMetadata.from_json(doc)

    async def set_metadata(
        self,
        path: str,
        *,
        description: str | None = None,
        owner: str | None = None,
        tags: Mapping[str, str] | None = None,
        expires_at: str | None = None,
        max_versions: int | None = None,
    ) -> SecretMetadata:
        """Change the given fields only; ``tags`` replaces the whole tag map."""
        fields: dict[str, Any] = {
            "description": description,
            "owner": owner,
            "tags": dict(tags) if tags is not None else None,
            "expires_at": expires_at,
            "max_versions": max_versions,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        doc = await self._json("PATCH", secret_url(path, ":metadata"), json=body)
        return SecretMetadata.from_json(doc)

    async def secret_label(self, path: str, label: str) -> dict[str, Any]:
        """``current``, ``previous`` (the value the last rotation replaced) or ``pending``
        (a rotation's unproven value; needs ``rotate``): ``{path, version, value, ...}``."""
        doc = await self._json("GET", secret_url(path), params={"label": label})
        if isinstance(doc.get("value"), str):
            self._saw_value(str(doc.get("path", path)), doc["value"])
        return doc

    # -- tokens ------------------------------------------------------------------------

    async def create_token(
        self,
        prefix: str = "",
        mode: str = "read",
        ttl_seconds: Duration | None = None,
        description: str = "",
        *,
        policies: list[str] | None = None,
    ) -> IssuedToken:
        """A new scoped token, bound to ``policies`` (never more than the caller holds)
        or, with the root token only, to ``mode`` under ``prefix``.
        ``IssuedToken.token`` is shown by the server this once."""
        body: dict[str, Any] = {"prefix": prefix, "mode": mode, "description": description}
        if policies:
            body["policies"] = list(policies)
        if ttl_seconds is not None:
            body["ttl_seconds"] = seconds(ttl_seconds)
        doc = await self._json("POST", f"{API}/tokens", json=body)
        return IssuedToken.from_json(doc)

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"{API}/tokens/{segment(token_id)}")

    async def list_tokens(self) -> list[TokenInfo]:
        doc = await self._json("GET", f"{API}/tokens")
        return [TokenInfo.from_json(item) for item in doc.get("tokens", [])]

    async def token_self(self) -> TokenInfo:
        doc = await self._json("GET", f"{API}/tokens/self")
        return TokenInfo.from_json({"id": "", **doc})

    async def exchange_token(self, api_key: str, expires_in: Duration = 900) -> AccessToken:
        """Trade an API key for a signed short-lived access token (OAuth 2.0 client
        credentials): ``{"access_token", "token_type", "expires_in"}``. Other services
        verify it offline against ``/.well-known/jwks.json``. Raises Unauthenticated
        when the server refuses the key."""
        reply = await self._send(
            "POST",
            f"{API}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_secret": api_key,
                "expires_in": str(seconds(expires_in)),
            },
            headers={"Authorization": ""},  # the key in the form is the only credential
        )
        try:
            doc: Any = reply.json()
        except ValueError:
            doc = None
        if reply.status != 200 or not isinstance(doc, dict):
            why = (
                doc.get("error_description") or doc.get("error") if isinstance(doc, dict) else None
            )
            raise Unauthenticated(f"token exchange refused: {why or f'HTTP {reply.status}'}")
        return cast("AccessToken", doc)
