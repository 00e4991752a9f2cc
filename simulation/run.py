"""One policy's run: the simulated days, decided by the real service, answered from the hidden truth.

Each simulated hour: the responses due by then are recorded (`Respond`), then the hour's visits are
decided (`Decide`, all of them concurrently at the hour's clock, one customer at most once per batch so
that the run is reproducible), then each presented offer is answered from the truth: accepted with its
true probability (after a delay), else declined sometimes (mostly to the call-centre agent), else
ignored (the service infers it when the response window closes). On campaign days the 09:00 hour also
decides an e-mail for the campaign's customers and reports the sends (`ReportSend` naming the decision),
so that caps count them. The NBO policy refreshes its offers' posteriors daily and retrains on its own
history every `retrain_days` (simulation/learning.py), then serves the new model.

>>> stats, log = asyncio.run(simulate(RunConfig(customers=200, days=2, seed=1, policy="random",
...                                              workdir=tmp)))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decisioning.catalogue import Catalogue
from decisioning.engine import Decision
from decisioning.ports import Scorer
from decisioning.types import DAY, Outcome
from service.commands import Decide, ReportSend, Respond
from simulation.bank import Bank, generate_bank
from simulation.learning import Learner
from simulation.logs import DecisionLog, TargetPolicies
from simulation.schedule import CAMPAIGN_CHANNEL, CAMPAIGN_HOUR, INBOUND, START, Visits, campaign_customers, day_visits
from simulation.scorers import OracleScorer, PushScorer, constant_value
from simulation.stats import PolicyStats
from simulation.truth import ContactMemory, Truth
from simulation.wiring import BATCH_LIMIT as BATCH
from simulation.wiring import SimulatedClock, Wired, seeded_decision_ids, wired_service

# P(an explicit decline | not accepted), by channel: the agent records the customer's "no"
DECLINE = {"web": 0.03, "mobile": 0.03, "call_centre": 0.5, "email": 0.0}
# mean delay of an acceptance, seconds: at once to an agent, within hours online, within a day by e-mail
DELAY = {"web": 3 * 3600.0, "mobile": 2 * 3600.0, "call_centre": 120.0, "email": 6 * 3600.0}
MAX_DELAY = 0.9 * DAY  # inside the catalogue's one-day response window


@dataclass(frozen=True)
class RunConfig:
    customers: int
    days: int
    seed: int
    policy: str
    workdir: Path
    retrain_days: int = 2
    log_targets: tuple[str, ...] = ()  # the target policies whose probabilities the log carries
    budgets: bool = True
    log: bool = False  # keep the decision log (simulation/logs.py)
    campaigns: bool = True


@dataclass
class _World:
    bank: Bank
    truth: Truth
    rng: np.random.Generator
    memory: list[ContactMemory]
    rows: dict[str, int]
    due: list[tuple[float, int, Respond]] = field(default_factory=list)
    sequence: itertools.count = field(default_factory=itertools.count)


def scorer_factory(policy: str, world: _World) -> Callable[[Catalogue], Scorer] | None:
    """The policy's scorer (None: the service's own, the learning scorer on priors then models)."""
    if policy == "push":
        return lambda catalogue: PushScorer(catalogue.offers)
    if policy == "oracle":
        return lambda _: OracleScorer(world.truth, world.rows, lambda cid: world.memory[world.rows[cid]])
    return None


async def simulate(config: RunConfig, on_day: Callable[[int], None] | None = None) -> tuple[PolicyStats, DecisionLog]:
    """Run one policy for `config.days` simulated days; its figures and its decision log."""
    bank = generate_bank(config.customers, config.seed)
    rng = np.random.default_rng([config.seed, 4, zlib.crc32(config.policy.encode())])  # the answers' draws
    world = _World(bank, Truth(bank.needs), rng, [ContactMemory() for _ in bank.ids], bank.index())
    clock = SimulatedClock(START)
    stats = PolicyStats(config.policy, config.customers, config.days)
    factory = scorer_factory(config.policy, world)
    async with wired_service(config.workdir, bank, config.policy, factory, clock, budgets=config.budgets,
                             decision_ids=seeded_decision_ids(config.seed)) as wired:
        targets = TargetPolicies(config.log_targets, wired.catalogue, world.truth, world.rows, world.memory)
        run = _Run(config, world, wired, clock, stats, DecisionLog(targets, enabled=config.log))
        await run.days(on_day)
        return stats, run.log


class _Run:
    def __init__(
        self, config: RunConfig, world: _World, wired: Wired, clock: SimulatedClock, stats: PolicyStats,
        log: DecisionLog,
    ) -> None:  # fmt: skip
        self.config, self.world, self.wired, self.clock, self.stats, self.log = config, world, wired, clock, stats, log
        self.values = {o.id: constant_value(o) for o in wired.catalogue.offers}
        self.consent = np.array([bool(f["marketing_consent"]) for f in world.bank.features])
        self.learner = Learner(wired, stats) if config.policy == "nbo" else None

    @property
    def model_label(self) -> str:
        return self.learner.label if self.learner is not None else self.config.policy

    async def days(self, on_day: Callable[[int], None] | None) -> None:
        digital = self.world.bank.need("digital")
        for day in range(self.config.days):
            if self.learner is not None:
                self.clock.now = START + day * DAY
                await self.learner.start_of_day(day, self.config.retrain_days)
            visits = day_visits(digital, self.config.seed, day)
            campaign = campaign_customers(self.consent, self.config.seed, day) if self.config.campaigns else None
            for hour in range(24):
                await self._hour(day, hour, visits, campaign)
            if on_day is not None:
                on_day(day)

    async def _hour(self, day: int, hour: int, visits: Visits, campaign: np.ndarray | None) -> None:
        at = START + day * DAY + hour * 3600.0
        await self._deliver(at)
        self.clock.now = at
        mask = visits.hour == hour
        inbound = list(zip(visits.customer[mask].tolist(), visits.channel[mask].tolist(), strict=True))
        await self._decide_all(day, [(c, INBOUND[ch]) for c, ch in inbound])
        if campaign is not None and hour == CAMPAIGN_HOUR:
            await self._decide_all(day, [(int(c), CAMPAIGN_CHANNEL) for c in campaign])

    async def _deliver(self, until: float) -> None:
        """Record every response due by `until`, on the clock of its own moment (in order)."""
        due = self.world.due
        while due and due[0][0] <= until:
            batch_at = due[0][0]
            batch: list[Respond] = []
            while due and due[0][0] <= until and len(batch) < BATCH:
                batch.append(heapq.heappop(due)[2])
            self.clock.now = batch_at
            await asyncio.gather(*(self.wired.service.respond(r) for r in batch))

    async def _decide_all(self, day: int, contacts: Sequence[tuple[int, str]]) -> None:
        for batch in _batches(contacts):
            results = await asyncio.gather(
                *(self.wired.service.decide(Decide(self.world.bank.ids[c], ch)) for c, ch in batch)
            )
            sends = [self._answer(day, c, r.decision) for (c, _), r in zip(batch, results, strict=True)]
            reports = [s for s in sends if s is not None]
            if reports:
                await self.wired.service.record_contacts(reports)

    def _answer(self, day: int, row: int, decision: Decision) -> ReportSend | None:
        """Count the decision, draw the customer's answer to each offer, and schedule it."""
        s, channel, at = self.stats, decision.context.channel, decision.context.now
        s.decisions += 1
        s.empty_decisions += not decision.offers
        s.suppressions.update(x.policy_id for x in decision.suppressions)
        memory = self.world.memory[row]
        send = None
        for presented in decision.offers:
            offer_id = presented.offer.id
            p = self.world.truth.probability(row, offer_id, channel, memory, at)
            accepted = bool(self.world.rng.random() < p)
            self.log.add(decision, presented, row, self.values[offer_id], accepted, p)
            memory.add(at, offer_id)
            s.channels[channel] += 1
            s.count_contact(day, self.model_label, accepted=accepted, value=self.values[offer_id])
            self._schedule(decision, offer_id, accepted, memory)
            if channel == CAMPAIGN_CHANNEL:
                send = ReportSend(f"send-{decision.decision_id}", decision.customer_id, offer_id, channel, at=at,
                                  campaign=f"weekly-{day}", decision_id=decision.decision_id)  # fmt: skip
        return send

    def _schedule(self, decision: Decision, offer_id: str, accepted: bool, memory: ContactMemory) -> None:
        channel, rng = decision.context.channel, self.world.rng
        if accepted:
            memory.holds.add(offer_id)
            outcome, delay = Outcome.ACCEPTED, min(float(rng.exponential(DELAY[channel])), MAX_DELAY)
        elif rng.random() < DECLINE[channel]:
            self.stats.declined += 1
            outcome, delay = Outcome.DECLINED, 60.0
        else:
            return
        at = decision.context.now + delay
        respond = Respond(decision.customer_id, offer_id, channel, outcome, decision_id=decision.decision_id, at=at)
        heapq.heappush(self.world.due, (at, next(self.world.sequence), respond))


def _batches(contacts: Sequence[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Batches of at most BATCH contacts in which no customer appears twice (a second visit in the same
    hour waits for the next batch, so it sees the first one's presentation)."""
    out: list[list[tuple[int, str]]] = []
    pending = list(contacts)
    while pending:
        seen: set[int] = set()
        batch, later = [], []
        for contact in pending:
            if contact[0] in seen or len(batch) >= BATCH:
                later.append(contact)
            else:
                seen.add(contact[0])
                batch.append(contact)
        out.append(batch)
        pending = later
    return out
