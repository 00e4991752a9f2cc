"""`nbo keys create|list|revoke`: the API keys of the calling systems, in the history database.

`create` prints the key once, alone on the last line of stdout (so `nbo keys create ... | tail -1` captures
it); nothing else ever shows it or its hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, NoReturn, TypeVar

import typer

from app.settings import Settings
from history.keys import SCOPES, ApiKey, KeyRefused, SqlKeyStore

T = TypeVar("T")
keys_cli = typer.Typer(help="API keys of the calling systems (scopes and channels).", no_args_is_help=True)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="The calling system, e.g. web_bank, call_centre, campaign_tool")],
    scopes: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(SCOPES)}")],
    channels: Annotated[str | None, typer.Option(help="Comma-separated channels the key may use")] = None,
    all_channels: Annotated[bool, typer.Option("--all-channels", help="Allow every channel")] = False,
) -> None:
    """Create a key; it is printed once, alone on the last line."""
    if (channels is None) == (not all_channels):
        _refuse("give either --channels c,d or --all-channels")
    settings = Settings()
    wanted = None if all_channels else _split(channels or "")
    if wanted is not None:
        _check_channels(settings, wanted)
    try:
        key, secret = asyncio.run(_with_store(settings, lambda s: s.create(name, _split(scopes), wanted)))
    except KeyRefused as error:
        _refuse(str(error))
    typer.echo(f"created key {key.name} (id {key.key_id}): scopes {_scopes(key)}; channels {_channels(key)}")
    typer.echo("store it now, it is not shown again:")
    typer.echo(secret)


@keys_cli.command("list")
def keys_list() -> None:
    """Every key: name, id, scopes, channels, created, revoked (never the key or its hash)."""
    keys = asyncio.run(_with_store(Settings(), lambda s: s.list_keys()))
    rows = [("name", "id", "scopes", "channels", "created", "revoked")]
    rows += [(k.name, k.key_id, _scopes(k), _channels(k), _when(k.created_at), _when(k.revoked_at)) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys_cli.command("revoke")
def keys_revoke(name_or_id: Annotated[str, typer.Argument(help="The key's name or id")]) -> None:
    """Revoke a key; every replica refuses it within NBO_AUTH_CACHE_SECONDS."""
    settings = Settings()
    try:
        key = asyncio.run(_with_store(settings, lambda s: s.revoke(name_or_id)))
    except KeyRefused as error:
        _refuse(str(error))
    typer.echo(f"revoked key {key.name} (id {key.key_id}) at {_when(key.revoked_at)}")


async def _with_store(settings: Settings, action: Callable[[SqlKeyStore], Awaitable[T]]) -> T:
    if settings.database_url.startswith("sqlite"):
        # The embedded database is ours to migrate (as at service start); PostgreSQL: `nbo db upgrade`.
        from history.migrate import upgrade_async

        await upgrade_async(settings.database_url)
    store = SqlKeyStore(settings.database_url)
    await store.start()
    try:
        return await action(store)
    finally:
        await store.close()


def _check_channels(settings: Settings, channels: list[str]) -> None:
    """Refuse a channel the catalogue does not have (a typo would make a key that can never decide)."""
    from policies.loader import load_catalogue

    known = set(load_catalogue(settings.catalogue_dir).channels)
    unknown = sorted(set(channels) - known)
    if unknown:
        _refuse(f"unknown channels {unknown}: the catalogue has {', '.join(sorted(known))}")


def _refuse(message: str) -> NoReturn:
    typer.echo(f"refused: {message}", err=True)
    raise typer.Exit(code=2)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _scopes(key: ApiKey) -> str:
    return ",".join(s for s in SCOPES if s in key.scopes)


def _channels(key: ApiKey) -> str:
    return "all" if key.channels is None else ",".join(sorted(key.channels))


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
