"""`DecisionService.reload`: one swap of the catalogue, model and event rules; shared stores and counts kept."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from decisioning.types import Outcome
from service.commands import Decide, Respond
from service.errors import Overloaded
from tests.unit.factories import FixedScorer, catalogue, offer


def scorer(version: str, **propensities: float) -> FixedScorer:
    s = FixedScorer(propensities)
    s.version = version
    return s


async def test_a_reload_serves_the_new_catalogue_and_model_and_keeps_the_stores(build):
    world = build()
    service = world.service
    history, summaries, path = service.history, service.summaries, service.decisions
    old = world.catalogue
    grown = catalogue([*old.offers, offer("brand_new", "new", value=1000.0)], old.policies, outbound=old.outbound)
    service.reload(catalogue=dataclasses.replace(grown, version="v2"), scorer=scorer("new-1", brand_new=0.9))
    result = await service.decide(Decide("c-1", "web"))
    assert [p.offer.id for p in result.decision.offers] == ["brand_new"]
    assert (result.decision.catalogue_version, result.decision.model_version) == ("v2", "new-1")
    assert service.history is history and service.summaries is summaries and service.decisions is not path
    # The response path was rebuilt with the catalogue: it knows the new offer.
    decision_id = result.decision.decision_id
    assert (await service.respond(Respond("c-1", "brand_new", "web", Outcome.ACCEPTED, decision_id))).recorded
    # What was not given stays: a model-only reload keeps the new catalogue.
    service.reload(scorer=scorer("new-2"))
    assert service.catalogue.version == "v2" and service.scorer.version == "new-2"


async def test_a_decision_in_flight_finishes_on_its_pieces_and_still_counts_against_the_limit(build):
    world = build(max_in_flight=1)
    gate, original = asyncio.Event(), world.locks.hold

    @contextlib.asynccontextmanager
    async def gated(customer_id: str):
        await gate.wait()
        async with original(customer_id):
            yield

    world.locks.hold = gated  # type: ignore[method-assign]
    first = asyncio.create_task(world.service.decide(Decide("c-1", "web")))
    await asyncio.sleep(0.01)
    world.service.reload(scorer=scorer("new-1"))
    with pytest.raises(Overloaded):  # the in-flight count survived the rebuild of the decision path
        await world.service.decide(Decide("c-2", "web"))
    gate.set()
    assert (await first).decision.model_version == FixedScorer.version  # the scorer it started with
    assert (await world.service.decide(Decide("c-2", "web"))).decision.model_version == "new-1"
