"""Ids the service makes for what it records."""

from __future__ import annotations

import os
import time


def random_decision_id() -> str:
    """A new decision's id: `d-` and 32 hex digits, the first 12 the time in milliseconds, the other 20
    random (the layout of a version 7 UUID, RFC 9562, without its version bits).

    Time first, so that ids made one after another sort together: the history's primary key and the
    indexes that start with the decision id then take each insert on their newest page, where random ids
    dirtied a different page of every index for every decision (the SQLite history's write cost went
    down by about a third; see docs/performance.md). 80 random bits per millisecond keep ids unique
    across replicas. The id also seeds the decision's exploration draws (`decisioning.engine`, through a
    hash), so a caller that needs reproducible runs (the simulator) gives the service a seeded generator.

    >>> a, b = random_decision_id(), random_decision_id()
    >>> len(a), a[:2], a != b
    (34, 'd-', True)
    """
    return f"d-{time.time_ns() // 1_000_000 & _MS_MASK:012x}{int.from_bytes(os.urandom(10)):020x}"


_MS_MASK = (1 << 48) - 1  # 48 bits of milliseconds: until the year 10889
