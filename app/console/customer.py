"""The call-centre desktop: look a customer up, ask for a decision, record the customer's answer.

Decisions and responses go through the service's own `decide` and `respond` (the same `DecisionService`
as POST /v1/decisions and /v1/responses): the console is one more caller, with its key's scopes and
channels. Features are read through the service's cache port and validated as a decision validates them;
the history through the history port (`customer_history`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter, ValidationError

from app.console.session import PostedBy, Who
from app.console.timeline import lay_out
from app.console.web import page
from app.schemas import Identifier, Name
from decisioning.catalogue import Catalogue
from decisioning.explanation import Stage
from decisioning.ports import StoreUnavailable
from decisioning.quality import validate_features
from decisioning.types import Outcome
from service.commands import Decide, Respond
from service.errors import ServiceError
from service.service import DecisionService

router = APIRouter()
HISTORY_SHOWN = 60
ANSWERS = (Outcome.ACCEPTED, Outcome.CLICKED, Outcome.DECLINED, Outcome.IGNORED)
_IDENTIFIER = TypeAdapter(Identifier)
_NAME = TypeAdapter(Name)


class BadField(ValueError):
    """A form value the API would refuse too: said in the page, never echoed back."""


@dataclass(frozen=True)
class FeatureRow:
    name: str
    value: Any
    age: float | None  # seconds since it was written (None: never)
    defaulted: bool
    stale: bool
    source: str


def _service(request: Request) -> DecisionService:
    return request.app.state.service


def checked(adapter: TypeAdapter[str], value: str, field: str) -> str:
    """The value when the API's schema accepts it; BadField naming the field otherwise."""
    try:
        return adapter.validate_python(value.strip())
    except ValidationError as err:
        raise BadField(f"{field}: {err.errors()[0]['msg']}") from err


@router.get("/console/customer", response_class=HTMLResponse)
async def customer_page(request: Request, who: Who, customer_id: str = "") -> HTMLResponse:
    """The customer's features and contact history, and the decision form. Scope `history:read`."""
    who.require("history:read")
    service = _service(request)
    context: dict[str, Any] = {"customer_id": customer_id, "channels": service.catalogue.channels}
    if customer_id:
        try:
            context |= await _customer(service, checked(_IDENTIFIER, customer_id, "customer id"))
        except BadField as bad:
            context["error"] = str(bad)
        except (StoreUnavailable, ServiceError) as down:
            context["error"] = f"could not read the customer: {down}"
    return page(request, "customer.html", who, section="customer", **context)


async def _customer(service: DecisionService, customer_id: str) -> dict[str, Any]:
    now = service.clock()
    snapshot = await service.cache.load(customer_id)
    features = validate_features(service.catalogue.features, customer_id, snapshot, now)
    times = snapshot.feature_times
    rows = [
        FeatureRow(
            spec.name,
            features.values.get(spec.name),
            # A batch feature is as old as its last load ("*"); an event feature only when an event wrote it.
            _age(times.get(spec.name, times.get("*") if spec.source == "batch" else None), now),
            spec.name in features.defaulted,
            spec.name in features.stale,
            spec.source,
        )
        for spec in service.catalogue.features
    ]
    return {"known": features.known, "features": rows, **await _history(service, customer_id)}


async def _history(service: DecisionService, customer_id: str) -> dict[str, Any]:
    entries = await service.customer_history(customer_id, HISTORY_SHOWN)
    return {"entries": entries, "timeline": lay_out(entries, service.clock())}


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else max(now - at, 0.0)


@router.post("/console/customer/decide", response_class=HTMLResponse)
async def decide(
    request: Request,
    who: PostedBy,
    customer_id: Annotated[str, Form()],
    channel: Annotated[str, Form()],
    max_offers: Annotated[int, Form(ge=1, le=10)] = 3,
    intent: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Ask the service for a decision, with its explanation. Scope `decide`, in the channel."""
    service = _service(request)
    try:
        command = Decide(
            checked(_IDENTIFIER, customer_id, "customer id"),
            checked(_NAME, channel, "channel"),
            max_offers=max_offers,
            intent=checked(_NAME, intent, "intent") if intent.strip() else None,
            explain=True,
        )
    except BadField as bad:
        return page(request, "_decision.html", who, status=422, error=str(bad))
    who.require("decide", command.channel)
    try:
        result = await service.decide(command)
    except ServiceError as refused:
        return page(request, "_decision.html", who, status=422, error=str(refused))
    decision = result.decision
    extra = await _history(service, command.customer_id) if who.can("history:read") else {}
    return page(request, "_decision.html", who, decision=decision, explained=explained(decision, service.catalogue),
                answers=[a.value for a in ANSWERS], **extra)  # fmt: skip


def explained(decision: Any, catalogue: Catalogue) -> dict[str, list[Any]]:
    """The decision's explanation split for the page: passed over by arbitration, and dropped earlier."""
    names = {o.id: o.name for o in catalogue.offers}
    rows = [(e, names.get(e.offer_id, e.offer_id)) for e in decision.explanations]
    return {
        "passed_over": [r for r in rows if r[0].stage is Stage.ARBITRATION],
        "dropped": [r for r in rows if r[0].stage not in (Stage.SELECTED, Stage.ARBITRATION)],
    }


@router.post("/console/customer/respond", response_class=HTMLResponse)
async def respond(
    request: Request,
    who: PostedBy,
    customer_id: Annotated[str, Form()],
    offer_id: Annotated[str, Form()],
    channel: Annotated[str, Form()],
    decision_id: Annotated[str, Form()],
    outcome: Annotated[str, Form()],
) -> HTMLResponse:
    """Record the customer's answer to one presented offer (the service's Respond). Scope `respond`."""
    service = _service(request)
    try:
        command = Respond(
            checked(_IDENTIFIER, customer_id, "customer id"),
            checked(_IDENTIFIER, offer_id, "offer"),
            checked(_NAME, channel, "channel"),
            _answer(outcome),
            checked(_IDENTIFIER, decision_id, "decision id"),
        )
    except BadField as bad:
        return page(request, "_response.html", who, status=422, error=str(bad))
    who.require("respond", command.channel)
    try:
        result = await service.respond(command)
    except ServiceError as refused:
        return page(request, "_response.html", who, status=422, error=str(refused))
    extra = await _history(service, command.customer_id) if who.can("history:read") else {}
    return page(request, "_response.html", who, command=command, result=result, **extra)


def _answer(outcome: str) -> Outcome:
    if outcome not in {a.value for a in ANSWERS}:
        raise BadField(f"outcome: one of {', '.join(a.value for a in ANSWERS)}")
    return Outcome(outcome)
