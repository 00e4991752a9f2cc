"""The contact history as a timeline: one lane per channel, one mark per contact or response.

Laid out here (pure, tested) and drawn as inline SVG by `_timeline.html`, so that the page needs no
script to show it.

>>> from decisioning.records import HistoryEntry
>>> e = HistoryEntry("contact", "d-1", "c-1", 100.0, "web", "inbound", "card_gold", "cards", "presented", "d-1")
>>> t = lay_out([e], now=200.0)
>>> [lane.channel for lane in t.lanes], t.marks[0].kind
(['web'], 'decision')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from decisioning.records import HistoryEntry

WIDTH = 760.0
LEFT = 110.0  # room for the channel names
RIGHT = 12.0
LANE_HEIGHT = 28.0
TOP = 8.0


@dataclass(frozen=True)
class Lane:
    channel: str
    y: float


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    kind: str  # decision (inbound presented), outbound (selected / sent), response
    label: str  # what a tooltip says


@dataclass(frozen=True)
class Timeline:
    lanes: tuple[Lane, ...]
    marks: tuple[Mark, ...]
    height: float
    start: float
    end: float
    width: float = WIDTH
    left: float = LEFT


def lay_out(entries: Sequence[HistoryEntry], now: float) -> Timeline:
    """Place every entry: x by time (oldest entry on the left, `now` on the right), y by channel."""
    channels = sorted({e.channel for e in entries})
    lanes = tuple(Lane(c, TOP + LANE_HEIGHT * (i + 0.5)) for i, c in enumerate(channels))
    y_of = {lane.channel: lane.y for lane in lanes}
    start = min((e.at for e in entries), default=now - 86_400.0)
    span = max(now - start, 1.0)
    usable = WIDTH - LEFT - RIGHT
    marks = tuple(
        Mark(LEFT + usable * (e.at - start) / span, y_of[e.channel], kind_of(e), label_of(e)) for e in entries
    )
    return Timeline(lanes, marks, TOP * 2 + LANE_HEIGHT * max(len(lanes), 1), start, now)


def kind_of(entry: HistoryEntry) -> str:
    """decision, outbound or response: the three kinds of the unified history."""
    if entry.kind == "response":
        return "response"
    return "outbound" if entry.direction == "outbound" else "decision"


def label_of(entry: HistoryEntry) -> str:
    return f"{entry.outcome} {entry.offer_id} in {entry.channel}"
