"""`SqlKeyStore`: the API keys of the calling systems, in the history database (SQLite or PostgreSQL).

A key reads `nbo_<key_id>_<secret>`: `key_id` (10 hex digits) is its public part, shown by `nbo keys list`
and used to find the row; the secret is 256 random bits. Only the SHA-256 of the whole key is stored: a
plain hash is enough for a key of that entropy (no dictionary to try), and a stolen table gives no key.
A key is shown once, when it is created, and never logged.

>>> store = SqlKeyStore("sqlite+aiosqlite:///var/nbo.db")                     # doctest: +SKIP
>>> await store.start()                                                       # doctest: +SKIP
>>> key, secret = await store.create("web_bank", {"decide"}, {"web"})          # doctest: +SKIP
>>> await store.verify(secret)                                                # doctest: +SKIP
ApiKey(key_id='3f9a2b1c0d', name='web_bank', ...)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from history.database import make_engine
from history.tables import api_keys

SCOPES = ("decide", "respond", "events", "contacts", "history:read", "admin")
KEY_PREFIX = "nbo"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{10}})_[A-Za-z0-9_\-]{{43}}$")


class KeyRefused(Exception):
    """A key operation refused: an unknown scope, a taken name, no such key."""


@dataclass(frozen=True)
class ApiKey:
    """A calling system's key as stored, without its secret or hash."""

    key_id: str
    name: str
    scopes: frozenset[str]
    channels: frozenset[str] | None  # None: every channel
    created_at: float
    revoked_at: float | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def allows_channel(self, channel: str) -> bool:
        return self.channels is None or channel in self.channels


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key; None for anything else (checked before any database call)."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match else None


def new_key() -> tuple[str, str]:
    """A fresh (key_id, key)."""
    key_id = secrets.token_hex(5)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def check_new_key(name: str, scopes: Iterable[str], channels: Iterable[str] | None) -> None:
    """Refuse a bad name, an unknown or missing scope, or an empty channel list (say "all" with None)."""
    if not NAME_PATTERN.match(name):
        raise KeyRefused(f"invalid name {name!r}: lowercase letters, digits, '_', '.', '-', at most 64")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not set(scopes):
        raise KeyRefused(f"unknown or missing scopes {unknown}: choose from {', '.join(SCOPES)}")
    if channels is not None and not set(channels):
        raise KeyRefused("no channel given: list the channels, or allow all channels explicitly")


class SqlKeyStore:
    """API keys on SQLAlchemy (async), in the table `api_keys` of the history database (migration 0003)."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        self._engine: AsyncEngine | None = None

    async def start(self) -> None:
        if self._engine is None:
            options = {"pool_size": 2, "max_overflow": 4, "pool_pre_ping": True} if "postgresql" in self.url else {}
            # A database error quotes its statement's parameters: a key's hash must not reach a traceback.
            self._engine = make_engine(self.url, hide_parameters=True, **options)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqlKeyStore.start() was not called")
        return self._engine

    async def create(self, name: str, scopes: Iterable[str], channels: Iterable[str] | None) -> tuple[ApiKey, str]:
        """Store a new key; the key itself is returned here and nowhere else. `channels` None: every channel."""
        check_new_key(name, scopes, channels)
        key_id, key = new_key()
        row = ApiKey(key_id, name, frozenset(scopes), None if channels is None else frozenset(channels), self._clock())
        values = {
            "key_id": key_id,
            "name": name,
            "key_hash": hash_key(key),
            "scopes": sorted(row.scopes),
            # SQL NULL, not the JSON value null, stands for every channel.
            "channels": sa.null() if row.channels is None else sorted(row.channels),
            "created_at": row.created_at,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(api_keys.insert().values(**values))
        except IntegrityError:
            raise KeyRefused(f"a key named {name!r} exists (revoked keys keep their name): choose another") from None
        return row, key

    async def verify(self, key: str) -> ApiKey | None:
        """The valid (not revoked) key that `key` is; None for a malformed, unknown, wrong or revoked key."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        query = sa.select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
        except sa.exc.TimeoutError as error:
            # No pooled connection in time: the store is unavailable (an OSError: the service answers 503).
            raise TimeoutError("no key store connection available") from error
        if row is None or not hmac.compare_digest(row["key_hash"], hash_key(key)):
            return None
        return _key_from(row)

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))).mappings().all()
        return [_key_from(r) for r in rows]

    async def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke the key with this name or id (idempotent: a revoked key keeps its first revocation time)."""
        match = sa.or_(api_keys.c.name == name_or_id, api_keys.c.key_id == name_or_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                api_keys.update().where(match, api_keys.c.revoked_at.is_(None)).values(revoked_at=self._clock())
            )
            row = (await conn.execute(sa.select(api_keys).where(match))).mappings().first()
        if row is None:
            raise KeyRefused(f"no key named or with id {name_or_id!r}")
        return _key_from(row)


def _key_from(row: sa.RowMapping) -> ApiKey:
    channels = row["channels"]
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        scopes=frozenset(row["scopes"]),
        channels=None if channels is None else frozenset(channels),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
