"""Run the history's Alembic migrations from code: the `nbo db upgrade` command and service start.

>>> upgrade("sqlite+aiosqlite:///var/nbo.db")        # doctest: +SKIP
>>> await upgrade_async(settings.database_url)         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

ALEMBIC_INI = Path(migrations.__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic Config for the packaged migrations, pointed at `url`, leaving logging to the caller."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent))
    # Config values go through ConfigParser interpolation: a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (`alembic upgrade head`); a no-op when it is there.

    Blocking. Safe to call from plain sync code (a CLI) and from a thread that runs an event loop: the
    migration environment runs its own loop (`asyncio.run`), so there it runs on a short-lived thread.
    """
    if not _loop_running():
        command.upgrade(alembic_config(url), revision)
        return
    errors: list[BaseException] = []
    thread = threading.Thread(target=_upgrade_into, args=(url, revision, errors), name="nbo-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def upgrade_async(url: str, revision: str = "head") -> None:
    """`upgrade` for async code (the service's lifespan), without blocking the event loop."""
    await asyncio.to_thread(upgrade, url, revision)


def _upgrade_into(url: str, revision: str, errors: list[BaseException]) -> None:
    try:
        command.upgrade(alembic_config(url), revision)
    except BaseException as error:  # handed to the calling thread, which re-raises it
        errors.append(error)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
