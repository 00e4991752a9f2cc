"""The unified contact history: SQL tables, migrations and the `SqlHistory` adapter.

>>> from history import SqlHistory, upgrade
>>> upgrade("sqlite+aiosqlite:///var/nbo.db")            # doctest: +SKIP
>>> history = SqlHistory("sqlite+aiosqlite:///var/nbo.db") # doctest: +SKIP
"""

from history.migrate import upgrade, upgrade_async
from history.sql import SqlHistory
from history.writer import HistoryClosedError, HistoryRecordError, HistoryWriteError

__all__ = ["HistoryClosedError", "HistoryRecordError", "HistoryWriteError", "SqlHistory", "upgrade", "upgrade_async"]
