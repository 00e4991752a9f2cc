"""When a contact becomes a training row, and with which label.

A contact (an offer presented inbound, or sent outbound) is settled:
- at once, by an explicit response inside its offer's response window: `accepted` (label 1), or
  `declined` / `ignored` (label 0; an acceptance inside the window wins over a refusal, whichever came
  first: the customer said no on the web and yes in the branch the next day);
- otherwise when its window has closed by `as_of` with no acceptance in it (label 0: ignored).
A contact whose window is still open and that has no explicit response is not settled yet: it is left
out, because its label may still change (keeping the early acceptances of recent contacts but not their
refusals would inflate the newest rows' response rate).

`clicked` neither labels nor settles: a click is interest on the way to an acceptance that may still come
inside the window, so a clicked contact waits like an unanswered one, and its label is whether it was
accepted. Contacts the channel reported `not_displayed` are left out (the customer never saw them), and so
are contacts whose decision kept no feature snapshot (no point-in-time features exist for them).

>>> settle(0.0, 100.0, accepted_at=None, refused_at=None, as_of=50.0)  # window open, no answer
>>> settle(0.0, 100.0, accepted_at=None, refused_at=10.0, as_of=50.0)
0
>>> settle(0.0, 100.0, accepted_at=120.0, refused_at=None, as_of=200.0)  # accepted too late
0
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Why a contact is not a training row, as the report counts them.
PENDING = "window_open"
NOT_DISPLAYED = "not_displayed"
NO_SNAPSHOT = "no_feature_snapshot"
OTHER_SCHEMA = "other_feature_schema"


def settle(
    at: float, window: float, *, accepted_at: float | None, refused_at: float | None, as_of: float
) -> int | None:
    """The label of a contact made at `at` with a response window of `window` seconds, as known at
    `as_of` (responses after `as_of` are not known); None while it is not settled."""
    closes = at + window
    if accepted_at is not None and accepted_at <= closes and accepted_at <= as_of:
        return 1
    if refused_at is not None and refused_at <= closes and refused_at <= as_of:
        return 0
    return 0 if closes <= as_of else None


@dataclass
class SettlingCounts:
    """What became of the contacts read: rows kept (positives among them) and the reasons others were not."""

    read: int = 0
    kept: int = 0
    positives: int = 0
    left_out: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, object]:
        return {"read": self.read, "kept": self.kept, "positives": self.positives, "left_out": dict(self.left_out)}
