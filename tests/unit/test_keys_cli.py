"""`nbo keys create|list|revoke` on the embedded database: the key shown once, alone on the last line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from history.keys import SqlKeyStore, hash_key, key_id_of


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    monkeypatch.setenv("NBO_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    return url


def nbo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


async def verify(url: str, key: str):
    store = SqlKeyStore(url)
    await store.start()
    try:
        return await store.verify(key)
    finally:
        await store.close()


def test_create_prints_the_key_alone_on_the_last_line_and_it_works(database_url: str):
    code, out, _ = nbo("keys", "create", "web_bank", "--scopes", "decide,respond", "--channels", "web,mobile")
    assert code == 0
    key = out.rstrip("\n").splitlines()[-1]
    assert key_id_of(key) is not None and key == key.strip()
    assert key not in "\n".join(out.splitlines()[:-1])
    found = asyncio.run(verify(database_url, key))
    assert found is not None and found.name == "web_bank"
    assert found.scopes == {"decide", "respond"} and found.channels == {"web", "mobile"}


def test_list_shows_every_key_but_never_a_key_or_its_hash(database_url: str):
    _, out, _ = nbo("keys", "create", "call_centre", "--scopes", "decide", "--channels", "call_centre")
    key = out.splitlines()[-1]
    nbo("keys", "create", "console", "--scopes", "history:read,admin", "--all-channels")
    assert nbo("keys", "revoke", "call_centre")[0] == 0

    code, listing, _ = nbo("keys", "list")
    assert code == 0
    header, *rows = listing.splitlines()
    assert header.split() == ["name", "id", "scopes", "channels", "created", "revoked"]
    assert [r.split()[0] for r in rows] == ["call_centre", "console"]
    assert rows[0].split()[1] == key_id_of(key) and rows[0].split()[-1] != "-"  # revoked
    assert rows[1].split()[2:4] == ["history:read,admin", "all"] and rows[1].split()[-1] == "-"
    assert key not in listing and key.split("_", 2)[2] not in listing and hash_key(key) not in listing
    assert asyncio.run(verify(database_url, key)) is None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--scopes", "decide"], "--channels c,d or --all-channels"),
        (["--scopes", "decide", "--channels", "web", "--all-channels"], "--channels c,d or --all-channels"),
        (["--scopes", "decide", "--channels", "callcentre"], "unknown channels ['callcentre']"),
        (["--scopes", "decide,superuser", "--channels", "web"], "unknown or missing scopes ['superuser']"),
        (["--scopes", "decide", "--channels", ","], "no channel given"),
    ],
)
def test_create_refuses_an_unclear_key_with_a_reason(database_url: str, args: list[str], reason: str):
    code, out, err = nbo("keys", "create", "batch", *args)
    assert code == 2 and reason in err and out == ""
    assert nbo("keys", "list")[1].splitlines()[1:] == []


def test_revoking_an_unknown_key_says_so(database_url: str):
    code, _, err = nbo("keys", "revoke", "nobody")
    assert code == 2 and "no key named or with id 'nobody'" in err
