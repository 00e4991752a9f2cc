"""Where the serving process reads the counts behind the cold-start posteriors: the SQL history.

In write-behind mode the decisions reach SQL through the drain, so the counts trail by the drain's lag
(seconds); that is fine for a prior that moves over hundreds of contacts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from decisioning.ports import ContactHistory
from history.outcomes import offer_response_counts
from history.sql import SqlHistory
from history.stream import StreamHistory


async def offer_counts(history: ContactHistory, window_days: float) -> Mapping[str, tuple[int, int]] | None:
    """offer id -> (accepted, contacts) over the last `window_days`, from the history's SQL store; None
    for a history without one (a test double): the posteriors then stay as they are."""
    sql = history.sql if isinstance(history, StreamHistory) else history
    if not isinstance(sql, SqlHistory):
        return None
    return await offer_response_counts(sql.engine, since=time.time() - window_days * 86_400)
