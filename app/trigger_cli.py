"""`nbo triggers read`: print the triggered deliveries, one JSON object a line, oldest first.

With NBO_REDIS_URL it reads the Redis Stream itself (no service needed); otherwise (the embedded mode, whose
queue lives in the service's process) it asks the running service, `GET /v1/triggers/deliveries`.
`--follow` keeps polling for new ones; the last id read is printed to stderr at the end, for `--after`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import httpx
import orjson
import typer

from app.settings import Settings

triggers_cli = typer.Typer(help="Real-time triggers (docs/triggers.md).", no_args_is_help=True)
Page = list[tuple[str, dict[str, Any]]]


@triggers_cli.command("read")
def read(
    after: Annotated[str | None, typer.Option(help="Start after this delivery id (default: the oldest kept)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Deliveries per page")] = 100,
    follow: Annotated[bool, typer.Option(help="Keep polling for new deliveries (Ctrl-C to stop)")] = False,
    url: Annotated[str | None, typer.Option(help="Ask this service, not Redis (default NBO_HOST:NBO_PORT)")] = None,
    key: Annotated[str | None, typer.Option(envvar="NBO_API_KEY", help="An API key with the admin scope")] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls with --follow")] = 1.0,
) -> None:  # fmt: skip
    """Print the triggered deliveries after `--after` as JSON lines."""
    settings = Settings()
    use_redis = settings.redis_url is not None and url is None
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    try:
        last = asyncio.run(_read_all(settings, base, key, after, limit, follow, interval, use_redis))
    except KeyboardInterrupt:
        return
    except (httpx.HTTPError, OSError, ValueError) as error:
        typer.echo(f"error: cannot read the deliveries: {error}", err=True)
        raise typer.Exit(2) from None
    if last is not None:
        typer.echo(f"last id: {last}", err=True)


async def _read_all(
    settings: Settings, base: str, key: str | None, after: str | None, limit: int, follow: bool, interval: float,
    use_redis: bool,
) -> str | None:  # fmt: skip
    reader = _redis_reader(settings) if use_redis else _http_reader(base, key)
    while True:
        page = await reader(after, limit)
        for entry_id, delivery in page:
            sys.stdout.write(orjson.dumps({"id": entry_id, **delivery}).decode() + "\n")
            after = entry_id
        sys.stdout.flush()
        if len(page) < limit and not follow:
            return after
        if len(page) < limit:
            await asyncio.sleep(interval)


def _http_reader(base: str, key: str | None) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}

    async def page(after: str | None, limit: int) -> Page:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.get(f"{base}/v1/triggers/deliveries", params=params, headers=headers)
        if answer.status_code != 200:
            raise ValueError(f"{base} answered HTTP {answer.status_code}: {answer.text[:200]}")
        return [(d["id"], d["delivery"]) for d in answer.json()["deliveries"]]

    return page


def _redis_reader(settings: Settings) -> Any:
    from delivery.outlets import RedisStreamDeliveries
    from features.redis_client import redis_client

    assert settings.redis_url is not None
    stream = RedisStreamDeliveries(redis_client(settings.redis_url), prefix=settings.redis_prefix)
    return stream.read
