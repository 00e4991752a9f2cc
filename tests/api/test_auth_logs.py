"""No API key, and no hash of one, ever reaches the logs: the JSON logs of a real uvicorn server (access
log on) answering valid, wrong, revoked and malformed keys, and of `nbo keys create`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import cli
from app.logs import configure_logging
from app.main import create_app
from history.keys import SCOPES, SqlKeyStore, hash_key
from tests.api.conftest import factory_for


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[str]]]:
    """Every log (DEBUG and up, access log on) as the service writes it (`configure_logging`), captured."""
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.disabled)
    configure_logging("DEBUG", access_log=True)
    captured = io.StringIO()
    root.handlers[0].setStream(captured)  # the service's handler and formatter, into a buffer

    def lines() -> list[str]:
        return captured.getvalue().splitlines()

    yield lines
    root.handlers[:], access.disabled = saved[0], saved[2]
    root.setLevel(saved[1])


def secrets_of(key: str) -> list[str]:
    """What must not be logged: the key, its secret part, its hash."""
    return [key, key.split("_", 2)[2], hash_key(key)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def served(app, port: int):
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=True, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_requests_with_valid_and_invalid_keys_log_no_key(settings, json_logs):
    app = create_app(settings.model_copy(update={"auth": "keys", "access_log": True}), factory_for(None))
    async with served(app, free_port()) as url:
        store = SqlKeyStore(settings.database_url)
        await store.start()
        _, valid = await store.create("web_bank", {"decide"}, {"web"})
        _, revoked = await store.create("old_console", set(SCOPES), None)
        await store.revoke("old_console")
        await store.close()
        wrong = valid[:-4] + ("aaaa" if not valid.endswith("aaaa") else "bbbb")
        body = {"customer_id": "c-1", "channel": "web"}
        async with httpx.AsyncClient(base_url=url) as client:
            answers = [
                await client.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {valid}"}),
                await client.post("/v1/decisions", json={**body, "channel": "sms"}, headers=auth(valid)),
                await client.post("/v1/decisions", json={"channel": 7}, headers=auth(valid)),
                await client.post("/v1/decisions", json=body, headers=auth(wrong)),
                await client.post("/v1/decisions", json=body, headers=auth(revoked)),
                await client.post("/v1/decisions", json=body, headers={"Authorization": f"Basic {valid}"}),
                await client.get("/v1/offers", headers=auth(valid)),
            ]
    assert [a.status_code for a in answers] == [200, 403, 422, 401, 401, 401, 200]
    lines = json_logs()
    access = [orjson.loads(line) for line in lines if '"uvicorn.access"' in line]
    assert len(access) == len(answers)  # the access log was on and is in the capture
    leaked = [(s, line) for line in lines for s in [*secrets_of(valid), *secrets_of(revoked), wrong] if s in line]
    assert leaked == []


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_nbo_keys_create_logs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_logs):
    monkeypatch.setenv("NBO_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["keys", "create", "campaign_tool", "--scopes", "contacts", "--all-channels"])
    assert result.exit_code == 0
    key = result.stdout.splitlines()[-1]
    lines = json_logs()
    assert lines, "the migration at DEBUG logs something: the capture works"
    assert [line for line in lines for s in secrets_of(key) if s in line] == []
