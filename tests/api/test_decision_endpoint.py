"""POST /v1/decisions on its short path (app/decision_endpoint.py) answers exactly as FastAPI's route does.

The short path handles the valid requests itself and hands every other one to the route, with the body it
already read; these tests pin both halves: the same answers with it on and off, over valid and hostile
input, and that it does take the valid requests (the route is not reached) and only those.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app import decision_endpoint
from app.auth import Caller
from app.decision_endpoint import DecisionEndpoint
from service.errors import Unavailable
from tests.api.conftest import Started
from tests.api.doubles import UnreachableHistory

WEB = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}
JSON = {"content-type": "application/json"}
NOW = time.time()

# (body bytes, headers): valid requests, and requests the short path must leave to the route.
CASES: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps(WEB).encode(), JSON),
    (json.dumps({**WEB, "max_offers": 3, "explain": True}).encode(), JSON),
    (json.dumps({**WEB, "context": {"intent": "complaint", "page": " /loans ", "basket": 3}}).encode(), JSON),
    (json.dumps({**WEB, "customer_id": "  c-adult  "}).encode(), {"content-type": "application/json; charset=utf-8"}),
    (json.dumps({**WEB, "channel": "carrier_pigeon"}).encode(), JSON),  # valid shape, unknown channel: 422
    (json.dumps({**WEB, "max_offers": 1000}).encode(), JSON),  # over the service's limit: 422
    (json.dumps({**WEB, "max_offers": 0}).encode(), JSON),
    (json.dumps({**WEB, "surprise": 1}).encode(), JSON),
    (json.dumps({**WEB, "context": {"deep": {"er": 1}}}).encode(), JSON),
    (b'{"customer_id": "c-adult", "channel": "web", "max_offers": 99999999999999999999999}', JSON),
    (b'{"customer_id": "c-adult", "channel": "web", "context": {"x": NaN}}', JSON),
    (json.dumps({**WEB, "context": {"basket": 2**70}}).encode(), JSON),  # orjson would read a float
    (b'{"customer_id": "c-adult", "channel": "web", "context": {"x": "\\ud800"}}', JSON),
    (b'{"customer_id": "c-adult", "channel": "web", "channel": "mobile"}', JSON),  # the last one wins
    (b"{not json", JSON),
    (b"[]", JSON),
    (b"", JSON),
    (b"\xff\xfe{", JSON),
    (json.dumps(WEB).encode(), {}),  # no content type
    (json.dumps(WEB).encode(), {"content-type": "text/plain"}),
    (json.dumps(WEB).encode(), {"content-type": "application/vnd.nbo+json"}),
    (json.dumps(WEB).encode("utf-16"), JSON),
]


async def twin(start: Callable[..., Awaitable[Started]], tmp_path: Path, fast: bool, **changes: Any) -> Any:
    """An app of its own (its own history), whose decision ids (the seed of exploration) and clock (read by
    the explanations) are the same as its twin's."""
    url = f"sqlite+aiosqlite:///{tmp_path / f'history-{fast}.db'}"
    app, client = await start(fast_decisions=fast, database_url=url, **changes)
    app.state.service.decisions.decision_ids = lambda: "d-twin"
    app.state.service.decisions.clock = lambda: NOW
    return client


@pytest.mark.parametrize(("content", "headers"), CASES)
async def test_the_short_path_answers_as_the_route(start, tmp_path, content, headers):
    fast, route = await twin(start, tmp_path, True), await twin(start, tmp_path, False)
    got = await fast.post("/v1/decisions", content=content, headers=headers)
    expected = await route.post("/v1/decisions", content=content, headers=headers)
    assert got.status_code == expected.status_code, (got.text, expected.text)
    assert got.headers.get("content-type") == expected.headers.get("content-type")
    assert got.json() == expected.json()


async def test_store_failures_while_deciding_get_the_route_s_503(start, tmp_path):
    answers = []
    for fast in (True, False):
        client = await twin(start, tmp_path, fast, adapt=lambda a: replace(a, history=UnreachableHistory(a.history)))
        answers.append(await client.post("/v1/decisions", json=WEB))
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].json() == answers[1].json() and answers[0].headers["retry-after"] == "1"


class Inner:
    """The app behind the short path (FastAPI's, in the service): records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(endpoint: DecisionEndpoint, app: Any, chunks: list[bytes], headers: dict[bytes, bytes]) -> list[dict]:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/decisions", "headers": list(headers.items()), "app": app}
    await endpoint(scope, receive, send)
    return sent


def fake_app(verifier: Any = None, handlers: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(auth=verifier, service=None), exception_handlers=handlers or {})


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Caller]]:
    """Stands in for the decision itself: records the body and caller it was given."""
    given: list[tuple[Any, Caller]] = []

    async def decision_answer(body: Any, service: Any, caller: Caller) -> bytes:
        given.append((body, caller))
        return b'{"decided": true}'

    monkeypatch.setattr(decision_endpoint, "decision_answer", decision_answer)
    return given


async def test_a_valid_request_is_answered_without_the_route(answers):
    inner = Inner()
    sent = await call(DecisionEndpoint(inner), fake_app(), [b'{"customer_id": "c-1",', b' "channel": "web"}'],
                      {b"content-type": b"application/json"})  # fmt: skip
    assert inner.bodies == [] and answers[0][0].customer_id == "c-1" and answers[0][1].key is None
    assert sent[0] == {"type": "http.response.start", "status": 200,
                       "headers": [(b"content-length", b"17"), (b"content-type", b"application/json")]}  # fmt: skip
    assert sent[1] == {"type": "http.response.body", "body": b'{"decided": true}'}


@pytest.mark.parametrize(
    ("chunks", "headers"),
    [
        ([b'{"customer_id": "c-1", "channel": "Web"}'], {b"content-type": b"application/json"}),
        ([b'{"customer_id": "c-1",', b' "channel": 1}'], {b"content-type": b"application/json"}),
        ([b'{"customer_id": "c-1", "channel": "web"}'], {b"content-type": b"text/json"}),
    ],
)
async def test_anything_else_reaches_the_route_with_its_body_as_sent(answers, chunks, headers):
    inner = Inner()
    sent = await call(DecisionEndpoint(inner), fake_app(), chunks, headers)
    assert inner.bodies == [b"".join(chunks)] and sent[0]["status"] == 299 and answers == []


class Keys:
    def __init__(self, scopes: set[str]) -> None:
        self.scopes = scopes

    async def verify(self, key: str) -> Any:
        if key != "good":
            return None
        return SimpleNamespace(allows=lambda scope: scope in self.scopes, name="k")


@pytest.mark.parametrize(
    ("authorization", "scopes", "short"),
    [
        (b"Bearer good", {"decide"}, True),
        (b"bearer  good ", {"decide"}, True),
        (b"Bearer good", {"respond"}, False),  # the route answers 403
        (b"Bearer bad", {"decide"}, False),  # the route answers 401
        (b"Basic good", {"decide"}, False),
        (b"Bearer", {"decide"}, False),
        (None, {"decide"}, False),
    ],
)
async def test_only_a_key_that_may_decide_takes_the_short_path(answers, authorization, scopes, short):
    inner = Inner()
    headers = {b"content-type": b"application/json"} | ({b"authorization": authorization} if authorization else {})
    await call(DecisionEndpoint(inner), fake_app(Keys(scopes)), [b'{"customer_id": "c", "channel": "web"}'], headers)
    assert (len(answers), len(inner.bodies)) == ((1, 0) if short else (0, 1))


async def test_an_error_while_deciding_goes_to_the_app_s_handler_or_up(monkeypatch: pytest.MonkeyPatch):
    from fastapi.responses import JSONResponse

    async def failing(body: Any, service: Any, caller: Caller) -> bytes:
        raise error

    async def handler(request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"handled": type(exc).__name__}, status_code=503)

    monkeypatch.setattr(decision_endpoint, "decision_answer", failing)
    endpoint, app = DecisionEndpoint(Inner()), fake_app(handlers={Unavailable: handler, Exception: handler})
    valid = [b'{"customer_id": "c", "channel": "web"}']
    error: Exception = Unavailable("down")
    sent = await call(endpoint, app, valid, {b"content-type": b"application/json"})
    assert sent[0]["status"] == 503 and sent[1]["body"] == b'{"handled":"Unavailable"}'
    error = RuntimeError("bug")  # the catch-all handler is the outermost middleware's: raised up to it
    with pytest.raises(RuntimeError):
        await call(endpoint, app, valid, {b"content-type": b"application/json"})


def test_fastapi_s_opentelemetry_is_off_unless_asked_for():
    from app.main import create_app
    from app.settings import Settings

    off, on = create_app(Settings(environment="test")), create_app(Settings(environment="test", opentelemetry=True))
    assert not any(off._telemetry[k] for k in ("tracing", "metrics", "logs"))  # no provider lookups per request
    assert all(on._telemetry[k] for k in ("tracing", "metrics", "logs"))


@pytest.mark.parametrize(("environment", "frozen"), [("development", True), ("test", False)])
async def test_what_the_start_built_is_kept_out_of_the_collector_s_scans(start, monkeypatch, environment, frozen):
    import app.main

    calls: list[str] = []
    monkeypatch.setattr(app.main.gc, "freeze", lambda: calls.append("freeze"))
    await start(environment=environment)
    assert calls == (["freeze"] if frozen else [])  # a test process starts many apps: never frozen there
