"""HTTP routes under /v1, plus health, readiness and metrics. Thin: parse, call the service, shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.schemas import (
    CatalogueOfferOut,
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
    OfferOut,
    OffersOut,
    ResponseIn,
    ResponseOut,
    TreatmentOut,
)
from app.service import DecisionService
from decisioning.catalogue import Offer
from decisioning.engine import Decision, PresentedOffer
from decisioning.records import HistoryEntry


def get_service(request: Request) -> DecisionService:
    return request.app.state.service


Service = Annotated[DecisionService, Depends(get_service)]
ERRORS = {422: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}}

router = APIRouter()


@router.post("/v1/decisions", response_model=DecisionOut, responses=ERRORS, tags=["decisions"])
async def post_decision(body: DecisionIn, service: Service) -> DecisionOut:
    """Decide the best offers for one contact; the decision is recorded before it is returned."""
    decision = await service.decide(body)
    return _decision_out(decision, body.explain)


@router.post("/v1/responses", response_model=ResponseOut, responses=ERRORS, tags=["history"])
async def post_response(body: ResponseIn, service: Service) -> ResponseOut:
    """Record a customer's response; idempotent, attributed to the decision that presented the offer."""
    response_id, decision_id, recorded = await service.respond(body)
    return ResponseOut(response_id=response_id, decision_id=decision_id, recorded=recorded)


@router.post("/v1/events", response_model=EventOut, responses=ERRORS, tags=["events"])
async def post_event(body: EventIn, service: Service) -> EventOut:
    """Apply a real-time customer event to the features that rules and models read."""
    updated = await service.apply_event(body)
    return EventOut(customer_id=body.customer_id, type=body.type, updated=updated)


@router.post("/v1/contacts", response_model=ContactsOut, responses=ERRORS, tags=["history"])
async def post_contacts(body: ContactsIn, service: Service) -> ContactsOut:
    """Record outbound sends (email, SMS, letters, call lists) in the unified history."""
    recorded = await service.record_contacts(body.contacts)
    return ContactsOut(received=len(body.contacts), recorded=recorded)


@router.get("/v1/customers/{customer_id}/history", response_model=HistoryOut, tags=["history"])
async def get_history(
    customer_id: Annotated[Identifier, Path()],
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryOut:
    entries = await service.customer_history(customer_id, limit)
    return HistoryOut(customer_id=customer_id, entries=[_entry_out(e) for e in entries])


@router.get("/v1/offers", response_model=OffersOut, tags=["catalogue"])
async def get_offers(service: Service) -> OffersOut:
    now = service.clock()
    offers = [_offer_out(o, now) for o in service.catalogue.offers]
    return OffersOut(catalogue_version=service.catalogue.version, offers=offers)


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"])
async def readyz(service: Service) -> JSONResponse:
    checks = await service.readiness()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", tags=["operations"])
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _decision_out(decision: Decision, explain: bool) -> DecisionOut:
    return DecisionOut(
        decision_id=decision.decision_id,
        customer_id=decision.customer_id,
        channel=decision.context.channel,
        placement=decision.context.placement,
        offers=[_presented_out(p) for p in decision.offers],
        control_group=decision.control_group,
        catalogue_version=decision.catalogue_version,
        model_version=decision.model_version,
        notes=list(decision.notes),
        explanation=[e.to_dict() for e in decision.explanations] if explain else None,
    )


def _presented_out(p: PresentedOffer) -> OfferOut:
    t = p.treatment
    return OfferOut(
        offer_id=p.offer.id,
        name=p.offer.name,
        group=p.offer.group,
        rank=p.rank,
        treatment=TreatmentOut(
            channel=t.channel, title=t.title, text=t.text, image_url=t.image_url, url=t.url, script=t.script
        ),
        propensity=p.propensity,
        value=p.value,
        priority=p.priority,
        selection_probability=p.selection_probability,
    )


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
