"""The compact per-customer history summary that contact policies and rules read.

The summary is the recent part of the customer's unified contact history, as a time-ordered tuple of
`ContactEvent`s: small (pruned by age and count), serialisable (a JSON list of rows) and cheap to update
(append one event). The hot path reads it from the cache, never from the database.

`HistoryView` is the read side for one decision at one moment. It derives what the raw events imply:
- a presentation later reported `not_displayed` (same decision and offer) no longer counts as presented;
- a contact with no response after the offer's response window counts as `ignored`, at the moment the
  window closed; a late response corrects it (the implicit `ignored` disappears);
- an outbound selection (`selected`) counts as `sent` from the moment of its decision; once the campaign
  tool confirms the send (a `sent` event naming the same decision and offer) the send counts instead, and
  a selection still unconfirmed after its channel's confirmation period stops counting. One contact is
  counted once, whichever way it arrived.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter

import orjson

from decisioning.types import (
    CONTACT_OUTCOMES,
    DAY,
    RESPONSE_OUTCOMES,
    ContactEvent,
    Outcome,
)

MAX_EVENTS = 512
RETENTION_SECONDS = 400 * DAY


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """Recent contacts and responses of one customer, oldest first.

    >>> s = HistorySummary().with_events([ContactEvent(0.0, "card_gold", "cards", "web", Outcome.PRESENTED)])
    >>> HistorySummary.from_json(s.to_json()) == s
    True
    """

    events: tuple[ContactEvent, ...] = ()

    def with_events(self, new: Iterable[ContactEvent], now: float | None = None) -> HistorySummary:
        """Return the summary with `new` merged in, pruned to the retention window and size."""
        merged = sorted((*self.events, *new), key=lambda e: e.at)
        if now is not None:
            cutoff = now - RETENTION_SECONDS
            merged = [e for e in merged if e.at >= cutoff]
        return HistorySummary(tuple(merged[-MAX_EVENTS:]))

    def to_json(self) -> bytes:
        return orjson.dumps([e.to_row() for e in self.events])

    @classmethod
    def from_json(cls, data: bytes | str | None) -> HistorySummary:
        if not data:
            return cls()
        return cls(tuple(ContactEvent.from_row(r) for r in orjson.loads(data)))


# An effective event as policies count it (after releases and implicit ignores): a ContactEvent, so that
# the events of the summary are used as they are and only implicit ignores are made anew.
Happening = ContactEvent

# Enum members read once: `Outcome.SENT` is a class attribute lookup through the enum's metaclass (~0.2 µs).
_SENT, _SELECTED, _IGNORED = Outcome.SENT, Outcome.SELECTED, Outcome.IGNORED
_NOT_DISPLAYED = Outcome.NOT_DISPLAYED
_CONTACTS = CONTACT_OUTCOMES
_SETTLING = RESPONSE_OUTCOMES | {Outcome.NOT_DISPLAYED}
_AT = itemgetter(0)  # ContactEvent.at


class HistoryView:
    """What a customer's history says at time `now`, with per-offer response windows applied.

    `response_window` maps an offer id to its response window in seconds (None: no implicit ignore).

    >>> view = HistoryView(HistorySummary(), now=0.0, response_window=lambda offer_id: 7 * DAY)
    >>> view.count({Outcome.PRESENTED})
    0
    """

    def __init__(
        self,
        summary: HistorySummary,
        now: float,
        response_window: Callable[[str], float | None] | Mapping[str, float | None] = lambda _: None,
        confirmation_window: Callable[[str], float | None] = lambda _: None,
    ) -> None:
        """`confirmation_window` maps an outbound channel to how long its selections count unconfirmed."""
        self.summary = summary
        self.now = now
        self._window = response_window.get if isinstance(response_window, Mapping) else response_window
        self._confirmation = confirmation_window
        self._memo: dict[tuple[frozenset[Outcome], frozenset[str] | None], tuple[Happening, ...]] = {}
        self._scope_memo: dict[tuple[frozenset[Outcome], frozenset[str] | None, bool], dict[str, list[float]]] = {}

    @cached_property
    def _past(self) -> tuple[ContactEvent, ...]:
        """The summary's events up to `now`."""
        events = self.summary.events
        if events and events[-1].at > self.now:
            events = tuple(e for e in events if e.at <= self.now)
        return events

    @cached_property
    def _settled(self) -> set[tuple[str | None, str]]:
        """(decision, offer) of the contacts that were released (`not_displayed`) or answered."""
        return {(e.decision_id, e.offer_id) for e in self._past if e.outcome in _SETTLING}

    @cached_property
    def happenings(self) -> tuple[Happening, ...]:
        """Every effective event up to `now`, oldest first.

        One pass over the past with what it needs from a first one (the settled, released and sent
        contacts): this runs on every decision, over tens of events.
        """
        past = self._past
        settled = self._settled
        released: set[tuple[str | None, str]] = set()
        sent: set[tuple[str | None, str]] = set()
        for e in past:
            if e.outcome is _NOT_DISPLAYED:
                released.add((e.decision_id, e.offer_id))
            elif e.outcome is _SENT:
                sent.add((e.decision_id, e.offer_id))
        now, window_of, confirmation_of = self.now, self._window, self._confirmation
        windows: dict[str, float | None] = {}
        out: list[Happening] = []
        pending: list[Happening] = []  # outbound selections not yet confirmed nor expired, as their sends
        ignores: list[Happening] = []  # contacts unanswered past their offer's response window
        for e in past:
            outcome = e.outcome
            if outcome in _CONTACTS:
                key = (e.decision_id, e.offer_id)
                if key in released:
                    continue
                out.append(e)
                if key in settled:
                    continue
                offer_id = e.offer_id
                if offer_id in windows:
                    window = windows[offer_id]
                else:
                    window = windows[offer_id] = window_of(offer_id)
                if window is not None and e.at + window <= now:
                    ignores.append(Happening(e.at + window, offer_id, e.group, e.channel, _IGNORED, e.decision_id))
            elif outcome is _SELECTED:
                period = confirmation_of(e.channel)
                if (e.decision_id, e.offer_id) in sent or period is None or e.at + period <= now:
                    continue
                pending.append(Happening(e.at, e.offer_id, e.group, e.channel, _SENT, e.decision_id))
            elif outcome is not _NOT_DISPLAYED:
                out.append(e)
        if pending or ignores:
            # A stable sort: at equal times the recorded events come first, then the sends, then the ignores.
            out.extend(pending)
            out.extend(ignores)
            out.sort(key=_AT)
        return tuple(out)

    def times(
        self,
        outcomes: Iterable[Outcome],
        *,
        offer_id: str | None = None,
        group: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> list[float]:
        """Times of the matching happenings, oldest first."""
        return [h.at for h in self.matching(outcomes, offer_id=offer_id, group=group, channels=channels)]

    def matching(
        self,
        outcomes: Iterable[Outcome],
        *,
        offer_id: str | None = None,
        group: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> Sequence[Happening]:
        """The happenings with one of `outcomes`, for the offer / group (None: any), in `channels`."""
        chans = None if channels is None else frozenset(channels)
        found = self._matching(frozenset(outcomes), chans)
        if offer_id is None and group is None:
            return found
        return [
            h for h in found if (offer_id is None or h.offer_id == offer_id) and (group is None or h.group == group)
        ]

    def _matching(self, outcomes: frozenset[Outcome], channels: frozenset[str] | None) -> tuple[Happening, ...]:
        # Contact policies ask the same (outcomes, channels) questions many times per decision.
        key = (outcomes, channels)
        found = self._memo.get(key)
        if found is None:
            wanted = [self._by_outcome.get(o, ()) for o in outcomes]
            found = [h for hs in wanted for h in hs if channels is None or h.channel in channels]
            if len(wanted) > 1:
                found.sort(key=lambda h: h.at)  # each list is in time order; their union is not
            found = self._memo[key] = tuple(found)
        return found

    def times_by_scope(
        self, outcomes: frozenset[Outcome], channels: frozenset[str] | None, by_offer: bool
    ) -> dict[str, list[float]]:
        """The times of the happenings with one of `outcomes` in `channels` (None: any), oldest first, per
        offer id (`by_offer`) or per group. Built once per question and view: the rules' history calls
        and the contact policies ask the same ones for many offers. Read only: the lists are shared.

        >>> view = HistoryView(HistorySummary(), now=0.0)
        >>> view.times_by_scope(frozenset({Outcome.PRESENTED}), None, True)
        {}
        """
        key = (outcomes, channels, by_offer)
        index = self._scope_memo.get(key)
        if index is None:
            index = self._scope_memo[key] = times_by_scope(self._matching(outcomes, channels), by_offer)
        return index

    @cached_property
    def _by_outcome(self) -> dict[Outcome, list[Happening]]:
        index: dict[Outcome, list[Happening]] = {}
        for h in self.happenings:
            index.setdefault(h.outcome, []).append(h)
        return index

    def count(
        self,
        outcomes: Iterable[Outcome],
        *,
        since: float | None = None,
        offer_id: str | None = None,
        group: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> int:
        """How many matching happenings at or after `since` (inclusive) and up to now."""
        times = self.times(outcomes, offer_id=offer_id, group=group, channels=channels)
        if since is None:
            return len(times)
        return len(times) - bisect.bisect_left(times, since)

    def days_since(
        self,
        outcomes: Iterable[Outcome],
        *,
        offer_id: str | None = None,
        group: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> float:
        """Days since the latest matching happening; `inf` when there was none."""
        times = self.times(outcomes, offer_id=offer_id, group=group, channels=channels)
        return (self.now - times[-1]) / DAY if times else math.inf

    def unanswered_contacts(self, since: float) -> dict[str, float]:
        """Offers contacted at or after `since` with no response yet: offer id -> latest contact time."""
        settled = self._settled
        out: dict[str, float] = {}
        for e in self._past:
            if e.outcome in CONTACT_OUTCOMES and e.at >= since and (e.decision_id, e.offer_id) not in settled:
                out[e.offer_id] = e.at
        return out


def times_by_scope(happenings: Iterable[Happening], by_offer: bool) -> dict[str, list[float]]:
    """The happenings' times per offer id (`by_offer`) or per group, in the order given.

    >>> times_by_scope([ContactEvent(1.0, "a", "g", "web", Outcome.PRESENTED)], False)
    {'g': [1.0]}
    """
    out: dict[str, list[float]] = {}
    for h in happenings:
        scope = h.offer_id if by_offer else h.group
        times = out.get(scope)
        if times is None:
            out[scope] = [h.at]
        else:
            times.append(h.at)
    return out
