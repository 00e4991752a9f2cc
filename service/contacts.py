"""Outbound contacts reported by a campaign tool, in the same history and under the same policies.

Outbound has one model (DESIGN.md, "Outbound"):
- a decision asked in an outbound channel *selects* offers: recorded as `selected`, it counts as `sent`
  against the caps from the moment of the decision (the decision path does this);
- the campaign tool confirms the send with the decision id: the send takes the selection's place, so a
  tool that both decides and reports is counted once; policies and budgets were applied at the decision;
- a send reported without a decision (a campaign made elsewhere) is recorded as `sent` even when it
  goes over a cap or a budget (the customer did receive it), and the answer names what it went over.
A retried list records nothing twice and updates each customer's summary with exactly the new sends.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from decisioning.catalogue import Catalogue, ContactPolicy, Offer
from decisioning.contact_policy import evaluate_policies
from decisioning.ports import ContactHistory, CustomerCache
from decisioning.quality import validate_features
from decisioning.records import ContactRecord
from decisioning.rules import RuleEnv
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import Context, Direction, FeatureValue, Outcome
from service.budgets import BudgetReservations
from service.commands import ReportSend
from service.errors import InvalidInput
from service.results import ContactsResult, SendResult
from service.summaries import Summaries
from service.validation import check_channel, known_offer

LOAD_CONCURRENCY = 32  # customers whose features and summaries are loaded at once for the policy checks


@dataclass(frozen=True, slots=True)
class _Checked:
    record: ContactRecord
    over_policies: tuple[str, ...] = ()
    over_budget: bool = False
    budget_key: str | None = None  # the unit this send took, given back if it turns out a duplicate


class OutboundContacts:
    """Record sends: confirmations of outbound selections, and sends decided elsewhere."""

    def __init__(
        self,
        catalogue: Catalogue,
        history: ContactHistory,
        cache: CustomerCache,
        summaries: Summaries,
        budgets: BudgetReservations,
        clock: Callable[[], float],
    ) -> None:
        self.catalogue = catalogue
        self.history = history
        self.cache = cache
        self.summaries = summaries
        self.budgets = budgets
        self.clock = clock

    async def record(self, sends: Sequence[ReportSend]) -> ContactsResult:
        """Check and record a list of sends; one `SendResult` per send, in order."""
        now = self.clock()
        records = [await self._record_for(i, send, now) for i, send in enumerate(sends)]
        checked = await self._check_policies(records, sends, now)
        added = await self.history.record_contacts([c.record for c in checked])
        new = {(r.contact_id, r.offer_id) for r in added}
        duplicates = [c for c in checked if (c.record.contact_id, c.record.offer_id) not in new]
        await self.budgets.release(c.budget_key for c in duplicates if c.budget_key)
        await self._update_summaries(added, now)
        results = tuple(self._result(c, (c.record.contact_id, c.record.offer_id) in new) for c in checked)
        return ContactsResult(len(sends), len(added), results)

    async def _record_for(self, index: int, send: ReportSend, now: float) -> ContactRecord:
        check_channel(self.catalogue, send.channel, f"contacts.{index}.channel")
        offer = known_offer(self.catalogue, send.offer_id, f"contacts.{index}.offer_id")
        if send.decision_id is not None:
            await self._check_selection(index, send)
        return ContactRecord(
            contact_id=send.contact_id,
            customer_id=send.customer_id,
            at=now if send.at is None else send.at,
            channel=send.channel,
            direction=Direction.OUTBOUND,
            offer_id=send.offer_id,
            group=offer.group,
            outcome=Outcome.SENT,
            treatment=send.treatment,
            campaign=send.campaign,
            catalogue_version=self.catalogue.version,
            decision_id=send.decision_id,
        )

    async def _check_selection(self, index: int, send: ReportSend) -> None:
        """A confirmation must name an outbound decision that selected this offer for this customer."""
        selection = await self.history.find_contact(send.decision_id or "", send.offer_id)
        if selection is None or selection.outcome is not Outcome.SELECTED:
            raise InvalidInput(
                f"contacts.{index}.decision_id",
                f"decision {send.decision_id} selected no offer '{send.offer_id}' in an outbound channel",
            )
        if selection.customer_id != send.customer_id:
            raise InvalidInput(f"contacts.{index}.customer_id", "the decision was made for another customer")

    async def _check_policies(
        self, records: Sequence[ContactRecord], sends: Sequence[ReportSend], now: float
    ) -> list[_Checked]:
        """Check each send decided elsewhere against the caps and budgets, customer by customer and in
        order, so that the second send of a list sees the first."""
        by_customer: dict[str, list[int]] = defaultdict(list)
        for i, (record, send) in enumerate(zip(records, sends, strict=True)):
            if send.decision_id is None:
                by_customer[record.customer_id].append(i)
        checked = [_Checked(r) for r in records]
        limit = asyncio.Semaphore(LOAD_CONCURRENCY)

        async def check_customer(customer_id: str, indices: list[int]) -> None:
            async with limit:
                await self._check_customer(customer_id, [records[i] for i in indices], now, checked, indices)

        await asyncio.gather(*(check_customer(c, ix) for c, ix in by_customer.items()))
        return checked

    async def _check_customer(
        self,
        customer_id: str,
        records: list[ContactRecord],
        now: float,
        checked: list[_Checked],
        indices: list[int],
    ) -> None:
        snapshot = await self.cache.load(customer_id)
        summary = await self.summaries.of(snapshot, now)
        customer = validate_features(self.catalogue.features, customer_id, snapshot, now)
        for i, record in sorted(zip(indices, records, strict=True), key=lambda pair: pair[1].at):
            offer = self.catalogue.offer(record.offer_id)
            assert offer is not None  # checked in _record_for
            over = self._over_policies(offer, record, customer.values, summary)
            within_budget = await self.budgets.reserve_one(offer, record.at)
            key = self.budgets.key(offer, record.at) if within_budget and offer.budget else None
            checked[i] = _Checked(record, over, not within_budget, key)
            summary = summary.with_events([record.event()])

    def _over_policies(
        self, offer: Offer, record: ContactRecord, values: Mapping[str, FeatureValue], summary: HistorySummary
    ) -> tuple[str, ...]:
        """Every policy that would have suppressed this send (each one checked on its own, so that the
        answer names all of them, not only the first)."""
        c = self.catalogue
        context = Context(record.channel, record.at)
        view = HistoryView(summary, record.at, c.response_window_seconds, c.confirmation_seconds)
        env = RuleEnv(values, context, view)

        def exceeds(policy: ContactPolicy) -> bool:
            outcome = evaluate_policies([policy], [offer], env, view, c.settings.timezone, c.service_offer_ids)
            return offer.id in outcome.suppressed

        return tuple(p.id for p in c.policies if exceeds(p))

    async def _update_summaries(self, added: Sequence[ContactRecord], now: float) -> None:
        by_customer: dict[str, list[ContactRecord]] = defaultdict(list)
        for record in added:
            by_customer[record.customer_id].append(record)
        for customer_id, records in by_customer.items():
            await self.summaries.append(customer_id, [r.event() for r in records], now)

    @staticmethod
    def _result(checked: _Checked, recorded: bool) -> SendResult:
        r = checked.record
        return SendResult(
            r.contact_id,
            r.offer_id,
            recorded,
            confirms=r.decision_id,
            over_policies=checked.over_policies if recorded else (),
            over_budget=checked.over_budget and recorded,
        )
