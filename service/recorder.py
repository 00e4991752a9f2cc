"""Recording a decision: the summary first, then the durable commit, and undoing both when it fails.

The summary is updated before the commit: a crash in between leaves it one presentation too many (a cap
then errs towards not contacting), where the other order would leave it one too few. The append also
releases the customer's hold (one Redis round trip): the next decision for the customer reads the
presentations from the summary, and need not wait for the commit. A decision that is not recorded is not
delivered: its budget units go back and its own events are taken out of the summary again (what another
decision appended meanwhile stays).
"""

from __future__ import annotations

import logging

from decisioning.engine import Decision
from decisioning.ports import ContactHistory, Held, UnstorableRecord
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

    async def record(
        self, decision: Decision, reservation: Reservation, request_id: str | None, held: Held | None = None
    ) -> bool:
        """Record the decision durably, appending it to the summary (and releasing `held`, the customer's
        hold, when given). False: another attempt of the same request was stored first (this one is
        undone). Raises `Unavailable` when the history cannot take it, `InvalidInput` when the record
        cannot be stored."""
        record = decision.to_record(request_id)
        lap("to_record")
        if held is None:  # the degraded path holds no customer
            await self.summaries.append(decision.customer_id, record.events(), decision.context.now)
        else:
            await self.summaries.append_and_release(held, record.events(), decision.context.now)
        lap("summary_append_unlock")
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
        await self.summaries.remove(record.customer_id, record.events(), record.at)
