"""Results: what the service answers, as values of the core or of this layer."""

from __future__ import annotations

from dataclasses import dataclass

from decisioning.engine import Decision


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """A decision that is recorded in the history. `replayed`: the request id had been decided already,
    and this is that decision again (as recorded; no explanation)."""

    decision: Decision
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ResponseResult:
    response_id: str
    decision_id: str | None  # the contact the response was attributed to
    recorded: bool  # False: a duplicate of a response already recorded (idempotent)


@dataclass(frozen=True, slots=True)
class TriggerOutcome:
    """What one trigger did after an event. `reason` says why nothing was delivered: `period` (it fired
    for this customer within its period), `contact_policy`, `control_group`, `no_offer`, `error` or
    `publish_failed` or `degraded` (decided while a store was down: caps unchecked, not sent)."""

    trigger: str
    channel: str
    decision_id: str | None = None
    offers: tuple[str, ...] = ()
    published: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    customer_id: str
    type: str
    updated: tuple[str, ...]  # the features the event changed
    triggered: tuple[TriggerOutcome, ...] = ()  # the triggers the event made true, and what each did


@dataclass(frozen=True, slots=True)
class SendResult:
    """One reported send: whether it was new, and which caps it went over (it is recorded anyway: the
    customer did receive it)."""

    contact_id: str
    offer_id: str
    recorded: bool  # False: this (contact_id, offer_id) was recorded before
    confirms: str | None = None  # the outbound decision whose selection this send confirms
    over_policies: tuple[str, ...] = ()  # contact policies the send exceeded
    over_budget: bool = False  # the offer's volume budget was used up


@dataclass(frozen=True, slots=True)
class ContactsResult:
    received: int
    recorded: int
    sends: tuple[SendResult, ...]
