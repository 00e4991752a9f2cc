"""POST /v1/decisions on a short path: the hot route without FastAPI's per-request machinery.

FastAPI serves a request through its exception and exit-stack middleware, the router, a `Request` object,
`json.loads`, dependency solving (service, bearer credentials, key, scope) and the body's validation:
~0.3-0.4 ms of CPU per decision on this machine, more than the contact policies. This ASGI layer sits
just inside the body limit and answers the common request itself: a JSON object body that `DecisionIn`
accepts, from a caller whose key holds the `decide` scope (or NBO_AUTH=none). Same model, same checks,
same answer bytes as the route.

Everything else goes on to FastAPI untouched (the body already read is handed over as it came): invalid
JSON or input, a body that is not `application/json`, a missing, unknown or under-scoped key, another
method. FastAPI's route then gives the error it always gave (the 422 with its field and reason, 401,
403...), so the error shapes have one source. An exception raised while deciding goes to the handler
the app registered for it (the 503 of a store failure, a domain error's status), as it would from the
route; one without a handler goes up to the app's 500 handler.

`NBO_FAST_DECISIONS=false` turns it off (every decision through the route).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import BaseRoute

from app.auth import Caller
from app.routes import decision_answer, router
from app.schemas import DecisionIn
from history.keys import ApiKey

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DECISIONS = "/v1/decisions"
# What Starlette's Response(media_type="application/json") sends besides its length, in its order.
JSON_TYPE = (b"content-type", b"application/json")


class DecisionEndpoint:
    """The short path for POST /v1/decisions; every other request goes to `app` as it came."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: BaseRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DECISIONS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        headers = _headers(scope)
        parsed = _parse(body, headers) if body is not None else None
        if parsed is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        scope["route"] = self._decision_route()  # the metrics' route label, as the router sets it
        if not await _answer(scope, receive, send, parsed, headers):  # no key, or not one that may decide
            await self.app(scope, _replay(messages, receive), send)  # the route says which

    def _decision_route(self) -> BaseRoute | None:
        if self._route is None:
            self._route = next((r for r in router.routes if getattr(r, "path", None) == DECISIONS), None)
        return self._route


async def _answer(scope: Scope, receive: Receive, send: Send, body: DecisionIn, headers: dict[bytes, bytes]) -> bool:
    """Decide and send the answer; False (nothing sent) when the caller may not decide. An exception goes to
    the app's handler for it, as from the route, or up when it has none."""
    app, started = scope["app"], False

    async def send_once(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        caller = await _caller(app.state.auth, headers.get(b"authorization"))
        if caller is None:
            return False
        await _send_json(send_once, await decision_answer(body, app.state.service, caller))
    except Exception as exc:
        handler = None if started else _handler_for(app, exc)
        if handler is None:
            raise
        response = handler(Request(scope, receive), exc)
        response = await response if inspect.isawaitable(response) else response
        await response(scope, receive, send)
    return True


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """Every message of the request body as received, and the body (None: the client went away)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the app the request goes on to: the messages already read, then the client's own."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header (as Starlette's `Headers.get` reads it)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.lower(), value)
    return found


def _parse(body: bytes, headers: dict[bytes, bytes]) -> DecisionIn | None:
    """The body as a `DecisionIn` when it is a JSON object the model accepts; None otherwise (the route
    answers it). Parsed by `json.loads`, as Starlette's `Request.json` does: the model sees the values
    FastAPI would give it (orjson, 5 µs faster here, reads an integer beyond 64 bits as a float, which the
    context's scalar check would then let through)."""
    if headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower() != b"application/json":
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(data, dict):
        return None
    try:
        return DecisionIn.model_validate(data)
    except ValidationError:
        return None


async def _caller(verifier: Any, authorization: bytes | None) -> Caller | None:
    """The caller when it may decide (a key with the `decide` scope, or no auth at all); None otherwise.
    The bearer credentials are read as FastAPI's `HTTPBearer` reads them."""
    if verifier is None:
        return Caller(None)
    if authorization is None:
        return None
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    credentials = credentials.strip()
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    key: ApiKey | None = await verifier.verify(credentials)
    if key is None or not key.allows("decide"):
        return None
    return Caller(key)


async def _send_json(send: Send, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), JSON_TYPE]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _handler_for(app: Any, exc: Exception) -> Callable[..., Any] | None:
    """The handler the app's exception middleware would call for `exc` (the most specific class first);
    None for the catch-all, which belongs to the outermost error middleware (the 500)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
