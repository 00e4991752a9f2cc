"""Alembic environment of the contact history: async engines, the URL chosen at run time.

The URL comes from, in order: `-x url=...` on the alembic command line; the `sqlalchemy.url` option
that `history.migrate.upgrade(url)` sets on its Config; the NBO_DATABASE_URL environment variable; the
embedded default `sqlite+aiosqlite:///var/nbo.db`.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from history.database import ensure_sqlite_directory
from history.tables import metadata

DEFAULT_URL = "sqlite+aiosqlite:///var/nbo.db"

config = context.config

# Configure logging from the ini only for the alembic CLI: when the service migrates at start it has
# set up its own logging, which fileConfig would otherwise replace (and silence existing loggers).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def database_url() -> str:
    """The URL to migrate, by the precedence in the module docstring."""
    from_cli = context.get_x_argument(as_dictionary=True).get("url")
    return (
        from_cli
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("NBO_DATABASE_URL")
        or DEFAULT_URL
    )


def configure(**options: object) -> None:
    # SQLite alters tables by copying them ("batch" mode); PostgreSQL alters in place.
    is_sqlite = database_url().startswith("sqlite")
    context.configure(target_metadata=metadata, render_as_batch=is_sqlite, compare_type=True, **options)


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL for review instead of running it."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
