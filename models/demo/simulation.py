"""A simulated contact history of the demo bank, with responses drawn from the hidden ground truth.

Inbound visits (web, mobile, call centre, branch) arrive at random times at per-customer rates;
outbound campaigns (email weekly, SMS fortnightly) reach a share of the customers who gave consent.
Each contact presents one offer drawn uniformly from the offers that have a treatment for the channel,
are active, and respect consent and do-not-contact (plus an optional `eligible` check). A uniform random
logging policy is what an exploration history looks like: every offer is tried on every kind of
customer, and `selection_probability` (1 / candidates) is logged for unbiased offline evaluation.

Responses follow `GroundTruth` at the features *as they were at the contact*: accepted with the true
probability (after a click on digital channels), sometimes a click without acceptance, explicit
declines mostly in assisted channels; no response means ignored. Responses after `now` are not known yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from decisioning.catalogue import feature_vector
from decisioning.ports import CustomerSnapshot
from decisioning.quality import validate_features
from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import DAY, Context, Direction, FeatureValue, Outcome
from models.dataset import FeatureSnapshots
from models.demo.events import add_snapshots
from models.demo.truth import GroundTruth

if TYPE_CHECKING:
    from decisioning.catalogue import Catalogue, Offer

Features = Mapping[str, FeatureValue]
Eligible = Callable[[Features, Context, "Offer"], bool]
PLACEMENTS = {
    "web": "home_hero",
    "mobile": "app_home",
    "call_centre": "agent_desktop",
    "branch": "advisor_desk",
}
CAMPAIGNS = {"email": (7, 0.3), "sms": (14, 0.1)}  # channel: (every N days, share of consenting customers)
DIGITAL = frozenset({"web", "mobile", "email", "sms"})
MODEL_VERSION = "simulation-uniform"


@dataclass(frozen=True)
class SimulatedHistory:
    """Inbound decisions, outbound sends and responses over [start, now], and the feature snapshots."""

    start: float
    now: float
    decisions: tuple[DecisionRecord, ...]
    sends: tuple[ContactRecord, ...]
    responses: tuple[ResponseRecord, ...]
    snapshots: FeatureSnapshots

    @cached_property
    def contacts(self) -> list[ContactRecord]:
        """Every contact, inbound and outbound, oldest first."""
        inbound = [c for d in self.decisions for c in d.contacts]
        return sorted([*inbound, *self.sends], key=lambda c: c.at)

    @cached_property
    def intents(self) -> dict[str, str | None]:
        """Decision id -> the request's intent."""
        return {d.decision_id: d.intent for d in self.decisions}


@dataclass(frozen=True, slots=True)
class _Contact:
    at: float
    customer: int
    channel: str
    campaign: str | None = None


def simulate_history(
    customers: Sequence[tuple[str, Features]],
    catalogue: Catalogue,
    days: float = 90,
    seed: int = 0,
    now: float | None = None,
    *,
    eligible: Eligible | None = None,
    truth: GroundTruth | None = None,
) -> SimulatedHistory:
    """Simulate `days` of contacts and responses ending at `now`; `customers` hold the features at `now`.

    >>> history = simulate_history(generate_customers(5000, catalogue.features), catalogue)  # doctest: +SKIP
    >>> len(history.contacts), len(history.responses)                                         # doctest: +SKIP
    (57412, 6630)
    """
    now = time.time() if now is None else now
    rng = np.random.default_rng(seed)
    start = now - days * DAY
    snapshots = FeatureSnapshots()
    for cid, values in customers:
        add_snapshots(snapshots, cid, values, (start, now), rng)
    contacts = _inbound(rng, customers, catalogue.channels, start, now)
    contacts += _campaigns(rng, customers, catalogue.channels, start, now)
    contacts.sort(key=lambda c: c.at)
    sim = _Simulator(rng, catalogue, snapshots, truth or GroundTruth(seed), eligible, now, seed)
    for contact in contacts:
        sim.run(contact, customers[contact.customer][0])
    return SimulatedHistory(start, now, tuple(sim.decisions), tuple(sim.sends), tuple(sim.responses), snapshots)


def _inbound(
    rng: np.random.Generator,
    customers: Sequence[tuple[str, Features]],
    channels: Sequence[str],
    start: float,
    now: float,
) -> list[_Contact]:
    """Visits per customer and channel ~ Poisson(rate x days), at uniform times."""
    values = [v for _, v in customers]
    rates = {
        "web": np.array([0.06 if v.get("digital_active") else 0.01 for v in values]),
        "mobile": np.array([0.004 * float(v.get("app_logins_30d") or 0) for v in values]),
        "call_centre": np.full(len(values), 0.012),
        "branch": np.array([0.012 if v.get("segment") == "senior" else 0.004 for v in values]),
    }
    out: list[_Contact] = []
    days = (now - start) / DAY
    for channel in (c for c in channels if c in rates):
        who = np.repeat(np.arange(len(values)), rng.poisson(rates[channel] * days))
        times = rng.uniform(start, now, len(who))
        out += [_Contact(float(t), int(i), channel) for t, i in zip(times, who, strict=True)]
    return out


def _campaigns(
    rng: np.random.Generator,
    customers: Sequence[tuple[str, Features]],
    channels: Sequence[str],
    start: float,
    now: float,
) -> list[_Contact]:
    """Outbound sends: every N days, a random share of the customers who may be contacted."""
    reachable = np.array([bool(v.get("marketing_consent")) and not v.get("do_not_contact") for _, v in customers])
    out: list[_Contact] = []
    for channel, (every, share) in CAMPAIGNS.items():
        if channel not in channels:
            continue
        for day in np.arange(start + 2 * DAY, now, every * DAY):
            picked = np.flatnonzero(reachable & (rng.random(len(customers)) < share))
            at = float(day) + 9 * 3600  # a morning send
            campaign = f"demo-{channel}-{time.strftime('%Y%m%d', time.gmtime(at))}"
            out += [_Contact(at + float(rng.uniform(0, 600)), int(i), channel, campaign) for i in picked]
    return out


class _Simulator:
    """Presents one offer per contact and draws the customer's responses."""

    def __init__(
        self,
        rng: np.random.Generator,
        catalogue: Catalogue,
        snapshots: FeatureSnapshots,
        truth: GroundTruth,
        eligible: Eligible | None,
        now: float,
        seed: int,
    ) -> None:
        self.rng, self.catalogue, self.snapshots, self.truth = rng, catalogue, snapshots, truth
        self.eligible, self.now, self.seed = eligible, now, seed
        self.pools = {ch: [o for o in catalogue.offers if ch in o.treatments] for ch in catalogue.channels}
        self.decisions: list[DecisionRecord] = []
        self.sends: list[ContactRecord] = []
        self.responses: list[ResponseRecord] = []

    def run(self, contact: _Contact, customer_id: str) -> None:
        values = self.snapshots.as_of(customer_id, contact.at) or {}
        intent = _intent(self.rng, contact.channel, values, contact.at)
        context = Context(contact.channel, contact.at, PLACEMENTS.get(contact.channel), intent)
        candidates = self._candidates(values, context, contact.campaign is not None)
        if not candidates:
            return
        offer = candidates[int(self.rng.integers(len(candidates)))]
        record = self._record(contact, customer_id, offer, 1.0 / len(candidates))
        p = self.truth.probability(values, offer, contact.channel, intent, contact.at)
        self.responses += _respond(self.rng, record, p, self._window(offer), self.now)
        if contact.campaign is None:
            self.decisions.append(self._decision(record, intent, values))
        else:
            self.sends.append(record)

    def _candidates(self, values: Features, context: Context, outbound: bool) -> list[Offer]:
        may_market = bool(values.get("marketing_consent")) and not values.get("do_not_contact")
        adult = float(values.get("age") or 0) >= 18
        return [
            o
            for o in self.pools.get(context.channel, ())
            if o.is_active(context.now)
            and (may_market and adult if o.marketing else not (outbound and values.get("do_not_contact")))
            and (self.eligible is None or self.eligible(values, context, o))
        ]

    def _record(self, contact: _Contact, customer_id: str, offer: Offer, probability: float) -> ContactRecord:
        n = len(self.decisions) + len(self.sends) + 1
        outbound = contact.campaign is not None
        return ContactRecord(
            contact_id=f"{'send' if outbound else 'sim'}-{self.seed}-{n:07d}",
            customer_id=customer_id,
            at=contact.at,
            channel=contact.channel,
            direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            offer_id=offer.id,
            group=offer.group,
            outcome=Outcome.SENT if outbound else Outcome.PRESENTED,
            treatment=offer.treatments[contact.channel].title,
            placement=PLACEMENTS.get(contact.channel),
            rank=1,
            selection_probability=probability,
            model_version=MODEL_VERSION,
            catalogue_version=self.catalogue.version,
            campaign=contact.campaign,
        )

    def _decision(self, c: ContactRecord, intent: str | None, values: Features) -> DecisionRecord:
        # Kept as the service keeps them: validated against the schema at the decision's time.
        validated = validate_features(
            self.catalogue.features, c.customer_id, CustomerSnapshot(c.customer_id, values), c.at
        )
        return DecisionRecord(
            decision_id=c.contact_id,
            customer_id=c.customer_id,
            at=c.at,
            channel=c.channel,
            placement=c.placement,
            intent=intent,
            control_group=False,
            model_version=MODEL_VERSION,
            catalogue_version=self.catalogue.version,
            contacts=(c,),
            features=feature_vector(self.catalogue.features, validated.values),
            feature_schema=self.catalogue.feature_schema,
        )

    def _window(self, offer: Offer) -> float:
        window = self.catalogue.response_window_seconds(offer.id)
        return 7 * DAY if window is None else window


def _intent(rng: np.random.Generator, channel: str, values: Features, at: float) -> str | None:
    """Why an assisted contact happens: a complaint, a wish to close, a declined card."""
    if channel not in ("call_centre", "branch"):
        return None
    churn, declined = values.get("churn_signal_at"), values.get("card_declined_last_at")
    u = float(rng.random())
    if declined is not None and at - float(declined) <= 3 * DAY and u < 0.6:
        return "card_declined"
    if churn is not None and at - float(churn) <= 30 * DAY and u < 0.3:
        return "wants_to_close"
    return "complaint" if u < 0.12 else "wants_to_close" if u < 0.16 else None


def _respond(rng: np.random.Generator, c: ContactRecord, p: float, window: float, now: float) -> list[ResponseRecord]:
    """The customer's responses to one contact, as the channels report them."""
    u, digital = rng.random(3), c.channel in DIGITAL
    delay = min(float(rng.exponential(0.5 * DAY)) if digital else float(u[2]) * 600, 0.9 * window)
    if u[0] < p:
        outcomes = [(Outcome.CLICKED, 0.3 * delay)] if digital else []
        outcomes.append((Outcome.ACCEPTED, delay))
    elif digital and u[1] < min(0.5, 2 * p):
        outcomes = [(Outcome.CLICKED, 0.3 * delay)]  # interested, but did not take it
    elif u[1] < (0.5 if not digital else 0.05 if c.channel in ("web", "mobile") else 0.0):
        outcomes = [(Outcome.DECLINED, min(delay, 60.0))]
    else:
        outcomes = []  # ignored: the history view infers it when the response window closes
    return [
        ResponseRecord(
            f"{c.contact_id}:{c.offer_id}:{o}",
            c.customer_id,
            c.offer_id,
            c.channel,
            o,
            c.at + d,
            c.contact_id,
            c.group,
        )
        for o, d in outcomes
        if c.at + d <= now
    ]
