"""Decision ids: time first (so the history's indexes take inserts on their newest page), then random."""

from __future__ import annotations

import re
import time

from service.ids import random_decision_id

ID = re.compile(r"^d-[0-9a-f]{32}$")


def test_an_id_is_d_and_32_hex_digits_with_the_time_in_milliseconds_first() -> None:
    before = time.time_ns() // 1_000_000
    made = random_decision_id()
    after = time.time_ns() // 1_000_000
    assert ID.match(made), made
    assert before <= int(made[2:14], 16) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    ids = []
    for _ in range(5):
        ids.append(random_decision_id())
        time.sleep(0.002)
    assert ids == sorted(ids)


def test_ids_made_in_the_same_millisecond_differ() -> None:
    many = [random_decision_id() for _ in range(20_000)]
    assert len(set(many)) == len(many)
    assert len({m[14:] for m in many}) == len(many)  # the random part alone tells them apart
