"""The key store's contract, on the embedded SQLite and on PostgreSQL (both migrated by Alembic)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic import command

from history.database import make_engine
from history.keys import SCOPES, KeyRefused, SqlKeyStore, hash_key, key_id_of
from history.migrate import alembic_config, upgrade
from history.tables import api_keys


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def keys_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
async def store(keys_url: str) -> AsyncIterator[SqlKeyStore]:
    now = iter(float(t) for t in range(1_000, 2_000))
    store = SqlKeyStore(keys_url, clock=lambda: next(now))
    await store.start()
    yield store
    await store.close()


async def test_a_created_key_verifies_with_its_scopes_and_channels(store: SqlKeyStore):
    created, key = await store.create("web_bank", {"decide", "respond"}, {"web", "mobile"})
    assert key.startswith(f"nbo_{created.key_id}_") and key_id_of(key) == created.key_id
    found = await store.verify(key)
    assert found == created
    assert found.allows("decide") and not found.allows("admin")
    assert found.allows_channel("web") and not found.allows_channel("call_centre")


async def test_all_channels_is_stored_as_such(store: SqlKeyStore):
    _, key = await store.create("console", set(SCOPES), None)
    found = await store.verify(key)
    assert found is not None and found.channels is None and found.allows_channel("branch")


async def test_only_a_hash_of_the_key_is_stored(store: SqlKeyStore):
    _, key = await store.create("batch", {"events"}, {"email"})
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(api_keys))).mappings().one()
    assert row["key_hash"] == hash_key(key)
    assert key not in {str(v) for v in row.values()}
    assert key.split("_", 2)[2] not in str(dict(row))


@pytest.mark.parametrize(
    "forged",
    ["", "nbo", "Bearer x", "nbo_0123456789_" + "a" * 43, "nbo_{id}_" + "a" * 43, "{key}x", "{key}"[:-1]],
)
async def test_a_wrong_unknown_or_malformed_key_is_not_verified(store: SqlKeyStore, forged: str):
    created, key = await store.create("mobile_app", {"decide"}, {"mobile"})
    candidate = forged.replace("{id}", created.key_id).replace("{key}", key)
    assert candidate != key
    assert await store.verify(candidate) is None


async def test_a_revoked_key_is_not_verified_and_stays_listed(store: SqlKeyStore):
    created, key = await store.create("call_centre", {"decide"}, {"call_centre"})
    revoked = await store.revoke("call_centre")
    assert revoked.revoked_at is not None and revoked.key_id == created.key_id
    assert await store.verify(key) is None
    again = await store.revoke(created.key_id)  # by id too; a second revocation keeps the first time
    assert again.revoked_at == revoked.revoked_at
    assert [k.name for k in await store.list_keys()] == ["call_centre"]


async def test_list_is_oldest_first_and_names_are_unique(store: SqlKeyStore):
    await store.create("web_bank", {"decide"}, {"web"})
    await store.create("campaign_tool", {"contacts", "decide"}, {"email", "sms"})
    with pytest.raises(KeyRefused, match="exists"):
        await store.create("web_bank", {"decide"}, {"web"})
    assert [k.name for k in await store.list_keys()] == ["web_bank", "campaign_tool"]


@pytest.mark.parametrize(
    ("name", "scopes", "channels", "message"),
    [
        ("Web Bank", {"decide"}, {"web"}, "invalid name"),
        ("web", {"deside"}, {"web"}, "unknown or missing scopes"),
        ("web", set(), {"web"}, "unknown or missing scopes"),
        ("web", {"decide"}, set(), "no channel given"),
    ],
)
async def test_a_bad_key_is_refused_before_anything_is_stored(store: SqlKeyStore, name, scopes, channels, message):
    with pytest.raises(KeyRefused, match=message):
        await store.create(name, scopes, channels)
    assert await store.list_keys() == []


async def test_revoking_an_unknown_key_is_refused(store: SqlKeyStore):
    with pytest.raises(KeyRefused, match="no key"):
        await store.revoke("nobody")


async def test_the_keys_migration_downgrades_to_0002_and_upgrades_again(store: SqlKeyStore, keys_url: str):
    await store.create("web_bank", {"decide"}, {"web"})
    await store.close()
    await asyncio.to_thread(command.downgrade, alembic_config(keys_url), "0002")
    tables = await table_names(keys_url)
    assert "api_keys" not in tables and "contacts" in tables
    await asyncio.to_thread(upgrade, keys_url)
    await store.start()
    assert await store.list_keys() == []


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_every_channel_is_sql_null_and_errors_never_quote_the_hash(store: SqlKeyStore):
    _, key = await store.create("console", {"admin"}, None)
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).where(api_keys.c.channels.is_(None)))).scalar() == 1
        with pytest.raises(sa.exc.IntegrityError) as refused:  # the same id twice: the error names no value
            await conn.execute(api_keys.insert().values(key_id=key_id_of(key), name="x", key_hash=hash_key(key),
                                                        scopes=[], created_at=0.0))  # fmt: skip
    assert hash_key(key) not in str(refused.value)
