"""HTTP routes under /v1, plus health, readiness and metrics. Thin: body to command, call, result to body.

Domain errors (`service.errors`) become HTTP statuses in one handler (`app/errors.py`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import Authenticated, Caller, ContactReporter, Decider, EventSender, HistoryReader, Responder
from app.schemas import (
    CatalogueOfferOut,
    ContactIn,
    ContactsIn,
    ContactsOut,
    DecisionIn,
    DecisionOut,
    ErrorOut,
    EventIn,
    EventOut,
    HistoryEntryOut,
    HistoryOut,
    Identifier,
    OffersOut,
    ReadyOut,
    ResponseIn,
    ResponseOut,
    SendOut,
    TriggeredOut,
)
from decisioning.catalogue import Offer
from decisioning.engine import PresentedOffer
from decisioning.explanation import explanation_dicts
from decisioning.records import HistoryEntry
from decisioning.types import Outcome
from service.commands import ApplyEvent, Decide, ReportSend, Respond
from service.metrics import lap
from service.results import DecisionResult, SendResult
from service.service import DecisionService


async def get_service(request: Request) -> DecisionService:
    # async: FastAPI runs a plain `def` dependency on its thread pool, a thread hop on every request.
    return request.app.state.service


Service = Annotated[DecisionService, Depends(get_service)]
_ERROR = {"model": ErrorOut}
# Every error a /v1 route can answer, each with the one JSON shape of app/errors.py and app/auth.py.
ERRORS: dict[int | str, dict[str, object]] = {
    401: {
        **_ERROR,
        "description": "no valid API key",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    403: {**_ERROR, "description": "the key lacks the scope, or may not use the channel"},
    404: _ERROR,
    413: {**_ERROR, "description": "the body is over NBO_MAX_BODY_BYTES"},
    422: {**_ERROR, "description": "invalid input: `detail` names each field and the reason"},
    503: {**_ERROR, "description": "a store is unavailable or the service is overloaded; see `Retry-After`"},
}

router = APIRouter()


@router.post("/v1/decisions", response_model=DecisionOut, responses=ERRORS, tags=["decisions"])
async def post_decision(body: DecisionIn, service: Service, caller: Decider) -> Response:
    """Decide the best offers for one contact; the decision is recorded before it is returned.

    A retry with a `request_id` that was decided already returns that decision again (`replayed`).
    Scope `decide`, in the body's channel."""
    return Response(await decision_answer(body, service, caller), media_type="application/json")


async def decision_answer(body: DecisionIn, service: DecisionService, caller: Caller) -> bytes:
    """The decision for a validated body from an authenticated caller, as the JSON bytes of a DecisionOut.
    Shared by the route and its short path (app/decision_endpoint.py)."""
    lap("http")  # body read, JSON parsed, validated, key checked
    caller.require_channel(body.channel)
    # The body of DecisionOut built as a dict and encoded by orjson: returning a Response skips FastAPI's
    # validation of the response model against itself and its JSON encoder, the hot path's largest cost
    # after the stores (tests/api checks every answer against DecisionOut).
    result = await service.decide(_decide(body))
    return orjson.dumps(_decision_body(result, body.explain))


@router.post("/v1/responses", response_model=ResponseOut, responses=ERRORS, tags=["history"])
async def post_response(body: ResponseIn, service: Service, caller: Responder) -> ResponseOut:
    """Record a customer's response; idempotent, attributed to the decision that presented the offer.

    Scope `respond`, in the body's channel."""
    caller.require_channel(body.channel)
    command = Respond(
        body.customer_id,
        body.offer_id,
        body.channel,
        Outcome(body.outcome),
        body.decision_id,
        _epoch(body.at),
        body.request_id,
    )
    result = await service.respond(command)
    return ResponseOut(response_id=result.response_id, decision_id=result.decision_id, recorded=result.recorded)


@router.post("/v1/events", response_model=EventOut, responses=ERRORS, tags=["events"])
async def post_event(body: EventIn, service: Service, caller: EventSender) -> EventOut:
    """Apply a real-time customer event to the features that rules and models read, then fire the
    catalogue's triggers it made true (`triggered`: each one's outbound decision). Scope `events`."""
    result = await service.apply_event(ApplyEvent(body.customer_id, body.type, body.attributes, _epoch(body.at)))
    triggered = [TriggeredOut(**dataclasses.asdict(t)) for t in result.triggered]
    return EventOut(customer_id=result.customer_id, type=result.type, updated=list(result.updated), triggered=triggered)


@router.post("/v1/contacts", response_model=ContactsOut, responses=ERRORS, tags=["history"])
async def post_contacts(body: ContactsIn, service: Service, caller: ContactReporter) -> ContactsOut:
    """Record outbound sends (email, SMS, letters, call lists) in the unified history.

    A send naming `decision_id` confirms that outbound decision's selection; one without is checked
    against the same contact policies and budgets, and recorded even when over them (the answer says so).
    Scope `contacts`, in the channel of every send (one send outside the key's channels refuses the list).
    """
    for index, contact in enumerate(body.contacts):
        caller.require_channel(contact.channel, f"contacts.{index}.channel")
    result = await service.record_contacts([_send(c) for c in body.contacts])
    return ContactsOut(
        received=result.received, recorded=result.recorded, contacts=[_send_out(s) for s in result.sends]
    )


@router.get("/v1/customers/{customer_id}/history", response_model=HistoryOut, responses=ERRORS, tags=["history"])
async def get_history(
    customer_id: Annotated[Identifier, Path()],
    service: Service,
    caller: HistoryReader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryOut:
    """The customer's unified contact history, newest first. Scope `history:read`."""
    entries = await service.customer_history(customer_id, limit)
    return HistoryOut(customer_id=customer_id, entries=[_entry_out(e) for e in entries])


@router.get("/v1/offers", response_model=OffersOut, responses=ERRORS, tags=["catalogue"])
async def get_offers(service: Service, caller: Authenticated) -> OffersOut:
    """The loaded catalogue and its version. Any valid key."""
    now = service.clock()
    offers = [_offer_out(o, now) for o in service.catalogue.offers]
    return OffersOut(catalogue_version=service.catalogue.version, offers=offers)


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process is up. Open: no key."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}}, tags=["operations"])
async def readyz(service: Service) -> JSONResponse:
    """Whether every store answers (503 while one does not). Open: no key."""
    checks = await service.readiness()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


METRICS_CONTENT = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}}


@router.get("/metrics", response_class=Response, responses=METRICS_CONTENT, tags=["operations"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics. Open (no key), like /healthz and /readyz: keep it behind the network."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _decide(body: DecisionIn) -> Decide:
    context = body.context.model_dump(exclude={"intent"}, exclude_none=True)
    return Decide(
        customer_id=body.customer_id,
        channel=body.channel,
        placement=body.placement,
        max_offers=body.max_offers,
        intent=body.context.intent,
        context=context,
        explain=body.explain,
        request_id=body.request_id,
    )


def _send(c: ContactIn) -> ReportSend:
    return ReportSend(
        c.contact_id, c.customer_id, c.offer_id, c.channel, _epoch(c.at), c.treatment, c.campaign, c.decision_id
    )


def _send_out(s: SendResult) -> SendOut:
    return SendOut(
        contact_id=s.contact_id,
        offer_id=s.offer_id,
        recorded=s.recorded,
        confirms=s.confirms,
        over_policies=list(s.over_policies),
        over_budget=s.over_budget,
    )


def _epoch(at: datetime | None) -> float | None:
    """Epoch seconds of a request time; a time without an offset is UTC."""
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))).timestamp()


def _decision_body(result: DecisionResult, explain: bool) -> dict[str, Any]:
    """DecisionOut's fields, in its order."""
    decision = result.decision
    return {
        "decision_id": decision.decision_id,
        "customer_id": decision.customer_id,
        "channel": decision.context.channel,
        "placement": decision.context.placement,
        "offers": [_presented_body(p) for p in decision.offers],
        "control_group": decision.control_group,
        "catalogue_version": decision.catalogue_version,
        "model_version": decision.model_version,
        "direction": decision.direction.value,
        "replayed": result.replayed,
        "notes": list(decision.notes),
        "explanation": explanation_dicts(decision.explanations) if explain and not result.replayed else None,
        "degraded": decision.degraded is not None,
        "degraded_reason": decision.degraded,
    }


def _presented_body(p: PresentedOffer) -> dict[str, Any]:
    """OfferOut's fields, in its order."""
    t = p.treatment
    return {
        "offer_id": p.offer.id,
        "name": p.offer.name,
        "group": p.offer.group,
        "rank": p.rank,
        "treatment": {"channel": t.channel, "title": t.title, "text": t.text, "image_url": t.image_url, "url": t.url,
                      "script": t.script},
        "propensity": float(p.propensity),
        "value": float(p.value),
        "priority": float(p.priority),
        "selection_probability": float(p.selection_probability),
    }


def _entry_out(e: HistoryEntry) -> HistoryEntryOut:
    return HistoryEntryOut(
        kind=e.kind,
        id=e.id,
        at=datetime.fromtimestamp(e.at, UTC),
        channel=e.channel,
        direction=e.direction,
        offer_id=e.offer_id,
        group=e.group,
        outcome=e.outcome,
        decision_id=e.decision_id,
        details=dict(e.details),
    )


def _offer_out(o: Offer, now: float) -> CatalogueOfferOut:
    return CatalogueOfferOut(
        offer_id=o.id,
        name=o.name,
        group=o.group,
        product=o.product,
        channels=sorted(o.treatments),
        active=o.is_active(now),
        tags=list(o.tags),
        value=o.value.text,
        lever=o.lever,
        budget=None if o.budget is None else {"limit": o.budget.limit, "period": o.budget.period.value},
        rules=[{"class": r.rule_class.value, "name": r.name, "owner": r.owner, "text": r.text} for r in o.rules],
    )
