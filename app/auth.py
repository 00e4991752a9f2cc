"""API keys at the HTTP edge: who is calling, with which scopes, in which channels.

Callers send `Authorization: Bearer KEY` (keys come from `nbo keys create`; see history/keys.py). A route
declares the scope it needs with one of the `Annotated` aliases below, and checks the body's channel with
`Caller.require_channel`:

    @router.post("/v1/decisions")
    async def post_decision(body: DecisionIn, caller: Decider) -> ...:
        caller.require_channel(body.channel, "channel")

No valid key: 401 `{"error": "unauthorized", ...}` with `WWW-Authenticate: Bearer`. A valid key outside
its scopes or channels: 403 `{"error": "forbidden", ...}`. With NBO_AUTH=none every caller is let in.

Verified keys are cached in process for NBO_AUTH_CACHE_SECONDS (2 s by default): a decision does not pay a
database round trip per request, and a revocation reaches every replica within that time. Unknown keys are
cached too (a caller retrying a bad key does not hit the database each time); a new key may therefore be
refused for up to that time after its creation.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.settings import Settings
from history.keys import SCOPES, ApiKey, SqlKeyStore

MAX_CACHED_KEYS = 10_000  # a flood of random keys must not grow the cache without bound

log = logging.getLogger("nbo.auth")


class KeyLookup(Protocol):
    """Where keys are checked: the key store (history.keys.SqlKeyStore) or a test's own.

    >>> await lookup.verify("nbo_3f9a2b1c0d_...")   # doctest: +SKIP
    ApiKey(key_id='3f9a2b1c0d', ...)               # or None: malformed, unknown, wrong or revoked
    """

    async def verify(self, key: str) -> ApiKey | None: ...


class Unauthorized(Exception):
    """No key, or not a valid one: 401."""


class Forbidden(Exception):
    """A valid key used outside its scopes or channels: 403."""


@dataclass(frozen=True)
class Caller:
    """The calling system behind a request; `key` is None when NBO_AUTH=none (everything allowed)."""

    key: ApiKey | None

    @property
    def name(self) -> str:
        return "anonymous" if self.key is None else self.key.name

    def require_scope(self, scope: str) -> None:
        if self.key is not None and not self.key.allows(scope):
            raise Forbidden(f"key '{self.key.name}' lacks the scope '{scope}'")

    def require_channel(self, channel: str, field: str = "channel") -> None:
        """403 when the key may not act in `channel` (`field` names where the body says it)."""
        if self.key is not None and not self.key.allows_channel(channel):
            raise Forbidden(f"key '{self.key.name}' may not use channel '{channel}' ({field})")


class KeyVerifier:
    """Verifies keys against a `KeyLookup`, remembering each answer for `ttl` seconds.

    The cache is keyed by the key's SHA-256, so no key is held in memory past its request. Concurrent
    requests with the same uncached key share one lookup: a burst of thousands of requests at start (or
    when an entry expires) makes one database call, not one each (which would exhaust the pool).
    """

    def __init__(self, lookup: KeyLookup, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup, self._ttl, self._clock = lookup, ttl, clock
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def verify(self, key: str) -> ApiKey | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(key, digest))
            self._pending[digest] = pending
            pending.add_done_callback(lambda done: self._settle(digest, done))
        # Shielded: a caller that goes away must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    async def _look_up(self, key: str, digest: str) -> ApiKey | None:
        try:
            found = await self._lookup.verify(key)
        except Exception:
            stale = self._cache.get(digest)
            if stale is None:
                raise
            # The key store (the history database) is unreachable: the last answer stands until it answers
            # again, so that a PostgreSQL outage, which the history's spool rides out, does not lock every
            # caller out. A revocation made meanwhile takes effect when the store is back.
            log.warning("key store unreachable: trusting the last answer for this key")
            self._cache[digest] = (self._clock() + self._ttl, stale[1])
            return stale[1]
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[digest] = (self._clock() + self._ttl, found)
        return found

    def _settle(self, digest: str, done: asyncio.Future[ApiKey | None]) -> None:
        self._pending.pop(digest, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone away


async def open_auth(settings: Settings) -> tuple[KeyVerifier | None, Callable[[], Awaitable[None]]]:
    """The verifier the settings ask for (None: NBO_AUTH=none) and how to close it. The schema must exist
    (the embedded database is migrated at start, PostgreSQL by `nbo db upgrade`)."""
    if settings.auth_mode == "none":
        return None, _nothing
    store = SqlKeyStore(settings.database_url)
    await store.start()
    return KeyVerifier(store, ttl=settings.auth_cache_seconds), store.close


async def _nothing() -> None:
    return None


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `nbo keys create`, sent as `Authorization: Bearer KEY`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def authenticated(request: Request, credentials: Credentials) -> Caller:
    """The caller of this request; 401 without a valid key (unless NBO_AUTH=none)."""
    verifier: KeyVerifier | None = request.app.state.auth
    if verifier is None:
        return Caller(None)
    if credentials is None:
        raise Unauthorized("send an API key: Authorization: Bearer KEY")
    key = await verifier.verify(credentials.credentials)
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    return Caller(key)


Authenticated = Annotated[Caller, Depends(authenticated)]


def scoped(scope: str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency: the caller, who must hold `scope` (403 otherwise)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(caller: Authenticated) -> Caller:
        caller.require_scope(scope)
        return caller

    return dependency


Decider = Annotated[Caller, Depends(scoped("decide"))]
Responder = Annotated[Caller, Depends(scoped("respond"))]
EventSender = Annotated[Caller, Depends(scoped("events"))]
ContactReporter = Annotated[Caller, Depends(scoped("contacts"))]
HistoryReader = Annotated[Caller, Depends(scoped("history:read"))]
Admin = Annotated[Caller, Depends(scoped("admin"))]


def install_auth_handlers(app: FastAPI, count: Callable[[Request, str], None]) -> None:
    """401 and 403 as JSON; `count` adds them to the error metrics. Neither echoes the key."""

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        count(request, "unauthorized")
        headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401, headers=headers)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        count(request, "forbidden")
        return JSONResponse({"error": "forbidden", "detail": str(exc)}, status_code=403)
