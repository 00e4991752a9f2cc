"""Recording a decision: the summary first, then the durable commit, and undoing both when it fails.

The summary is updated before the commit: a crash in between leaves it one presentation too many (a cap
then errs towards not contacting), where the other order would leave it one too few. A decision that is
not recorded is not delivered: its budget units go back and the summary is rebuilt without it.
"""

from __future__ import annotations

import logging

from decisioning.engine import Decision
from decisioning.ports import ContactHistory, UnstorableRecord
from decisioning.records import DecisionRecord
from service.budgets import BudgetReservations, Reservation
from service.errors import InvalidInput, Unavailable
from service.metrics import Metrics, lap
from service.summaries import Summaries

log = logging.getLogger("nbo.service")


class DecisionRecorder:
    """Append to the summary, commit to the history, undo on failure.

    >>> stored = await recorder.record(decision, reservation, request_id=None)  # doctest: +SKIP
    """

    def __init__(
        self, history: ContactHistory, summaries: Summaries, budgets: BudgetReservations, metrics: Metrics
    ) -> None:
        self.history = history
        self.summaries = summaries
        self.budgets = budgets
        self.metrics = metrics

    async def record(self, decision: Decision, reservation: Reservation, request_id: str | None) -> bool:
        """Record the decision durably. False: another attempt of the same request was stored first (this
        one is undone). Raises `Unavailable` when the history cannot take it, `InvalidInput` when the
        record itself cannot be stored."""
        record = decision.to_record(request_id)
        lap("to_record")
        await self.summaries.append(decision.customer_id, record.events(), decision.context.now)
        lap("summary_append")
        try:
            stored = await self.history.record_decision(record)
            lap("history_commit")
        except UnstorableRecord as err:
            await self._undo(record, reservation)
            self.metrics.errors.labels("history_record").inc()
            raise InvalidInput("context", f"the decision cannot be stored: {err}") from err
        except Exception as err:
            await self._undo(record, reservation)
            self.metrics.errors.labels("history_write").inc()
            log.error("decision not recorded", extra={"decision_id": record.decision_id, "error": type(err).__name__})
            raise Unavailable("the contact history is unavailable; the decision was not made") from err
        if not stored:
            await self._undo(record, reservation)
        return stored

    async def _undo(self, record: DecisionRecord, reservation: Reservation) -> None:
        """Give back the budget units and take the unmade decision out of the summary."""
        await self.budgets.release(reservation.keys)
        await self.summaries.try_rebuild(record.customer_id, record.at)
