"""Who is using the console: the API key in a session cookie, scopes, and CSRF tokens.

The console asks for an API key once (the login form) and keeps it in the `nbo_console` cookie: HttpOnly
(no script can read it), SameSite=Strict (no other site can make the browser send it), Secure when the
request came over https, Path=/console (the API never sees it). The cookie holds `<nonce>.<key>`: the key
is verified on every request through the service's own `KeyVerifier` (so a revoked key stops working
within NBO_AUTH_CACHE_SECONDS), and nothing is kept on the server, so any replica or worker serves any
page. The key never goes into a URL, a page or a log.

CSRF: every POST must carry the session's token (form field `csrf` or header `X-CSRF-Token`), an HMAC of
the session's random nonce; a page on another site cannot read the cookie, so it cannot compute it. The
nonce is new at every login (no session fixation). In the embedded development mode (NBO_AUTH=none) there
is no key, but the session and its CSRF token are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.auth import Caller, Forbidden, KeyVerifier

COOKIE = "nbo_console"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600  # a working day: the agent logs in again the next morning


class LoginRequired(Exception):
    """No session key, or one that is no longer valid: the login page."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class ConsoleForbidden(Exception):
    """A valid key without the scope (or channel) a page needs, or a POST without its CSRF token: 403."""


@dataclass(frozen=True)
class Session:
    """The browser's console session: its nonce, the key it logged in with ("" without keys)."""

    nonce: str
    key: str = ""
    new: bool = False  # not yet in the browser: the answer must set the cookie

    @property
    def csrf(self) -> str:
        return hmac.new(self.nonce.encode(), f"csrf|{self.key}".encode(), hashlib.sha256).hexdigest()[:40]

    def cookie_value(self) -> str:
        return f"{self.nonce}.{self.key}"


def read_session(request: Request) -> Session:
    """The session the cookie carries, or a fresh one (no key) when there is none or it is malformed."""
    raw = request.cookies.get(COOKIE, "")
    nonce, _, key = raw.partition(".")
    if len(nonce) < 16 or not nonce.replace("-", "").replace("_", "").isalnum():
        return Session(secrets.token_urlsafe(24), new=True)
    return Session(nonce, key)


def fresh_session(key: str = "") -> Session:
    """A new nonce (at login and logout, so that a token seen before does not carry over)."""
    return Session(secrets.token_urlsafe(24), key, new=True)


def set_cookie(request: Request, response: object, session: Session) -> None:
    """Write the session cookie on `response` (a starlette Response)."""
    response.set_cookie(  # type: ignore[attr-defined]
        COOKIE,
        session.cookie_value(),
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def is_https(request: Request) -> bool:
    """True behind https (uvicorn applies X-Forwarded-Proto from a trusted proxy to the scheme)."""
    return request.url.scheme == "https"


@dataclass(frozen=True)
class Operator:
    """The person at the console: their session and the key's caller (key None: no keys in this mode)."""

    session: Session
    caller: Caller
    keys_required: bool

    @property
    def name(self) -> str:
        return self.caller.name if self.keys_required else "development (no API keys)"

    def can(self, scope: str) -> bool:
        key = self.caller.key
        return key is None or key.allows(scope)

    def require(self, scope: str, channel: str | None = None) -> None:
        """ConsoleForbidden unless the key holds `scope` (and may act in `channel`)."""
        try:
            self.caller.require_scope(scope)
            if channel is not None:
                self.caller.require_channel(channel)
        except Forbidden as refused:
            raise ConsoleForbidden(str(refused)) from refused


async def operator(request: Request) -> Operator:
    """The console's operator; LoginRequired without a valid key (unless the service runs without keys)."""
    session = read_session(request)
    verifier: KeyVerifier | None = request.app.state.auth
    if verifier is None:
        return Operator(session, Caller(None), keys_required=False)
    if not session.key:
        raise LoginRequired()
    key = await verifier.verify(session.key)
    if key is None:
        raise LoginRequired("that key is no longer valid (revoked?): log in again")
    return Operator(session, Caller(key), keys_required=True)


async def checked_post(request: Request, who: Annotated[Operator, Depends(operator)]) -> Operator:
    """The operator of a POST whose CSRF token matches the session's (ConsoleForbidden otherwise)."""
    await require_csrf(request, who.session)
    return who


async def require_csrf(request: Request, session: Session) -> None:
    """ConsoleForbidden unless the request carries the session's CSRF token (header or form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if session.new or not sent or not hmac.compare_digest(sent, session.csrf):
        raise ConsoleForbidden("the form's CSRF token is missing or does not match this session: reload the page")


Who = Annotated[Operator, Depends(operator)]
PostedBy = Annotated[Operator, Depends(checked_post)]
