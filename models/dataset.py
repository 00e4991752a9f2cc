"""Training data from the contact history: labels from responses, features as they were at decision time.

Point in time: each contact is joined with the latest feature snapshot valid at or before the moment of
the contact, never a later one. Joining today's features instead leaks the future (a churn signal that
arrived after an offer was declined would "explain" the decline) and trains a model that looks better
offline than it is.

Labels: a contact is positive when a positive response (`accepted`; also `clicked` on the channels listed
in `click_channels`, for digital offers whose conversion happens elsewhere) arrives within the offer's
response window, negative when the window closed without one. A contact whose window is still open is
left out even if it was already accepted: keeping early positives but not their negatives would inflate
the newest rows' response rate. Contacts the channel reported `not_displayed` are left out too.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from decisioning.records import ContactRecord, ResponseRecord
from decisioning.types import DAY, FeatureValue, Outcome
from models.encoding import EncodingRow, FeatureEncoder, SpecLike

DEFAULT_WINDOW_SECONDS = 30 * DAY
POSITIVE_OUTCOMES = frozenset({Outcome.ACCEPTED})

Features = Mapping[str, FeatureValue]


class FeatureSnapshots:
    """Every customer's feature snapshots with the time each became valid.

    >>> snaps = FeatureSnapshots()
    >>> snaps.add("c-1", 100.0, {"age": 30})
    >>> snaps.add("c-1", 200.0, {"age": 31})
    >>> snaps.as_of("c-1", 199.0), snaps.as_of("c-1", 200.0), snaps.as_of("c-1", 50.0)
    ({'age': 30}, {'age': 31}, None)
    """

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = defaultdict(list)
        self._values: dict[str, list[Features]] = defaultdict(list)

    def add(self, customer_id: str, valid_from: float, values: Features) -> None:
        """Add a snapshot; of two with the same time, the one added last wins."""
        times = self._times[customer_id]
        i = bisect.bisect_right(times, valid_from)
        times.insert(i, valid_from)
        self._values[customer_id].insert(i, values)

    def as_of(self, customer_id: str, at: float) -> Features | None:
        """The latest snapshot valid at or before `at`; None when the customer had none yet."""
        times = self._times.get(customer_id)
        i = bisect.bisect_right(times, at) if times else 0
        return self._values[customer_id][i - 1] if i else None

    def of(self, customer_id: str) -> list[tuple[float, Features]]:
        """A customer's snapshots with their valid-from times, oldest first."""
        return list(zip(self._times.get(customer_id, ()), self._values.get(customer_id, ()), strict=True))

    def customers(self) -> list[str]:
        return list(self._times)

    def latest(self) -> dict[str, Features]:
        """Each customer's most recent snapshot."""
        return {cid: values[-1] for cid, values in self._values.items()}

    def __len__(self) -> int:
        return sum(len(t) for t in self._times.values())


@dataclass(frozen=True, slots=True)
class LabelledContact:
    contact: ContactRecord
    label: int
    intent: str | None = None


def label_contacts(
    contacts: Iterable[ContactRecord],
    responses: Iterable[ResponseRecord],
    now: float,
    response_window: Callable[[str], float | None] = lambda _: None,
    *,
    click_channels: frozenset[str] = frozenset(),
    intents: Mapping[str, str | None] | None = None,
) -> list[LabelledContact]:
    """Label every contact whose response window closed by `now`, oldest first.

    `response_window` gives an offer's window in seconds (None: 30 days). `intents` maps a decision id to
    the request's intent (contacts do not carry it; decisions do).
    """
    kept = sorted((c for c in contacts if c.at <= now), key=lambda c: c.at)
    index = _ContactIndex(kept)
    positives, hidden = index.settle([r for r in responses if r.at <= now], click_channels, response_window)
    intents = intents or {}
    return [
        LabelledContact(c, int((c.contact_id, c.offer_id) in positives), intents.get(c.contact_id))
        for c in kept
        if (c.contact_id, c.offer_id) not in hidden and c.at + _window(response_window, c.offer_id) <= now
    ]


def _window(response_window: Callable[[str], float | None], offer_id: str) -> float:
    window = response_window(offer_id)
    return DEFAULT_WINDOW_SECONDS if window is None else window


class _ContactIndex:
    """Finds the contact a response answers: by decision id, else the latest contact of that offer."""

    def __init__(self, contacts: Sequence[ContactRecord]) -> None:
        self.by_id = {(c.contact_id, c.offer_id): c for c in contacts}
        self.by_offer: dict[tuple[str, str], list[ContactRecord]] = defaultdict(list)
        for c in contacts:  # already in time order
            self.by_offer[(c.customer_id, c.offer_id)].append(c)

    def find(self, r: ResponseRecord) -> ContactRecord | None:
        if r.decision_id is not None and (r.decision_id, r.offer_id) in self.by_id:
            return self.by_id[(r.decision_id, r.offer_id)]
        earlier = self.by_offer.get((r.customer_id, r.offer_id), [])
        i = bisect.bisect_right([c.at for c in earlier], r.at)
        return earlier[i - 1] if i else None

    def settle(
        self,
        responses: Sequence[ResponseRecord],
        click_channels: frozenset[str],
        response_window: Callable[[str], float | None],
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(contacts answered positively in their window, contacts the channel never displayed)."""
        positives, hidden = set(), set()
        for r in responses:
            c = self.find(r)
            if c is None:
                continue
            key = (c.contact_id, c.offer_id)
            if r.outcome is Outcome.NOT_DISPLAYED:
                hidden.add(key)
            elif _is_positive(r, c, click_channels) and r.at <= c.at + _window(response_window, c.offer_id):
                positives.add(key)
        return positives, hidden


def _is_positive(r: ResponseRecord, c: ContactRecord, click_channels: frozenset[str]) -> bool:
    return r.outcome in POSITIVE_OUTCOMES or (r.outcome is Outcome.CLICKED and c.channel in click_channels)


@dataclass(frozen=True)
class TrainingSet:
    """Encoded rows, labels, contact times and offer ids, in time order."""

    encoder: FeatureEncoder
    x: np.ndarray
    y: np.ndarray
    at: np.ndarray
    offer_ids: np.ndarray

    def subset(self, rows: np.ndarray) -> TrainingSet:
        return TrainingSet(self.encoder, self.x[rows], self.y[rows], self.at[rows], self.offer_ids[rows])

    def __len__(self) -> int:
        return len(self.y)


def encoder_for(
    specs: Sequence[SpecLike],
    labelled: Sequence[LabelledContact],
    channels: Sequence[str] = (),
    intents: Sequence[str] = (),
) -> FeatureEncoder:
    """An encoder knowing the offers, groups, channels and intents of the training rows (plus the
    given channels and intents, so that codes stay stable when a channel is quiet in one period)."""
    offers = sorted({lc.contact.offer_id for lc in labelled})
    groups = sorted({lc.contact.group for lc in labelled})
    all_channels = [*channels, *sorted({lc.contact.channel for lc in labelled} - set(channels))]
    seen = {lc.intent for lc in labelled if lc.intent is not None}
    return FeatureEncoder(specs, offers, groups, all_channels, [*intents, *sorted(seen - set(intents))])


def build_training_set(
    labelled: Sequence[LabelledContact], snapshots: FeatureSnapshots, encoder: FeatureEncoder
) -> TrainingSet:
    """Join each labelled contact with the customer's features as they were at the contact."""
    rows = [_row(lc, snapshots) for lc in labelled]
    return TrainingSet(
        encoder,
        encoder.encode_many(rows),
        np.array([lc.label for lc in labelled], dtype=float),
        np.array([lc.contact.at for lc in labelled], dtype=float),
        np.array([lc.contact.offer_id for lc in labelled], dtype=object),
    )


def _row(lc: LabelledContact, snapshots: FeatureSnapshots) -> EncodingRow:
    c = lc.contact
    values = snapshots.as_of(c.customer_id, c.at)
    if values is None:
        values = {}  # unknown then: the decision ran on defaults
    return EncodingRow(values, c.offer_id, c.group, c.channel, lc.intent, c.at)
