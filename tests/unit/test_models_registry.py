"""The file registry: versions, champion and challenger pointers, and the traffic split."""

from __future__ import annotations

import re

import numpy as np
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.types import Context, CustomerFeatures
from models.lightgbm_scorer import LightGBMScorer
from models.prior import PriorScorer
from models.registry import ChampionChallengerScorer, ModelNotFound, ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainedModel, TrainingConfig, train_model

SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40),
    FeatureSpec("income_monthly", FeatureType.NUMBER, 2500),
    FeatureSpec("has_credit_card", FeatureType.BOOL, False),
)
OFFERS = synthetic_offers(6)


@pytest.fixture(scope="module")
def models() -> list[TrainedModel]:
    data = synthetic_training_set(SPECS, OFFERS, rows=3_000)
    return [train_model(data, "nbo", TrainingConfig(num_trees=n, min_data_in_leaf=20)) for n in (3, 6)]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def register(registry: ModelRegistry, trained: TrainedModel, now: float = NOW):
    return registry.register(trained.model_text(), trained.metadata, now=now)


def test_a_version_is_a_timestamp_and_a_content_hash_with_its_files(registry, models):
    meta = register(registry, models[0])
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", meta.version)
    folder = registry.directory("nbo", meta.version)
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.txt"]
    stored = registry.metadata("nbo", meta.version)
    assert stored.version == meta.version and stored.training_rows == models[0].metadata.training_rows
    assert stored.metrics["holdout"]["auc"] == pytest.approx(models[0].metadata.metrics["holdout"]["auc"])
    assert stored.encoder.columns == models[0].metadata.encoder.columns


def test_the_first_version_becomes_champion_and_later_ones_wait(registry, models):
    first = register(registry, models[0])
    second = register(registry, models[1], now=NOW + 60)
    assert registry.pointers("nbo").champion == first.version
    assert [m.version for m in registry.list_versions("nbo")] == [first.version, second.version]
    assert registry.load("nbo").version == first.version
    registry.promote("nbo", second.version)
    assert registry.load("nbo").version == second.version
    assert registry.names() == ["nbo"]


def test_registering_the_same_content_twice_is_harmless(registry, models):
    assert register(registry, models[0]).version == register(registry, models[0]).version
    assert len(registry.list_versions("nbo")) == 1


def test_unknown_models_and_versions_are_reported(registry, models):
    with pytest.raises(ModelNotFound):
        registry.load("nbo")
    register(registry, models[0])
    with pytest.raises(ModelNotFound):
        registry.load("nbo", "20990101T000000Z-deadbeef")
    with pytest.raises(ModelNotFound):
        registry.promote("nbo", "nope")


def test_without_a_model_the_service_scores_priors(registry):
    assert isinstance(registry.scorer("nbo"), PriorScorer)
    assert registry.list_versions("nbo") == [] and registry.names() == []


def test_a_challenger_takes_its_share_of_customers_by_a_stable_hash(registry, models):
    champion = register(registry, models[0])
    challenger = register(registry, models[1], now=NOW + 60)
    registry.set_challenger("nbo", challenger.version, share=0.2)
    scorer = registry.scorer("nbo", compiled=False)
    assert isinstance(scorer, ChampionChallengerScorer)
    ids = [f"c-{i:06d}" for i in range(20_000)]
    versions = [scorer.for_customer(cid).version for cid in ids]
    assert versions.count(challenger.version) / len(ids) == pytest.approx(0.2, abs=0.015)
    assert [scorer.for_customer(cid).version for cid in ids[:500]] == versions[:500]
    assert set(versions) == {champion.version, challenger.version}


def test_the_split_scorer_scores_with_the_customers_model(registry, models):
    register(registry, models[0])
    challenger = register(registry, models[1], now=NOW + 60)
    registry.set_challenger("nbo", challenger.version, share=0.5)
    scorer = registry.scorer("nbo", compiled=False)
    context = Context("web", NOW)
    for cid in ("c-000001", "c-000002", "c-000003", "c-000004"):
        customer = CustomerFeatures(cid, {"age": 40})
        own = scorer.for_customer(cid)
        assert isinstance(own, LightGBMScorer)
        assert np.array_equal(scorer.score(customer, context, OFFERS), own.score(customer, context, OFFERS))
    assert scorer.version.startswith(registry.pointers("nbo").champion)
    assert own.for_customer("c-000001") is own  # every scorer answers for_customer, split or not


def test_promoting_the_challenger_ends_the_split(registry, models):
    register(registry, models[0])
    challenger = register(registry, models[1], now=NOW + 60)
    registry.set_challenger("nbo", challenger.version, share=0.1)
    pointers = registry.promote("nbo", challenger.version)
    assert pointers.champion == challenger.version and pointers.challenger is None
    assert isinstance(registry.scorer("nbo", compiled=False), LightGBMScorer)


def test_a_challenger_share_must_be_a_fraction(registry, models):
    meta = register(registry, models[0])
    for share in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError):
            registry.set_challenger("nbo", meta.version, share)
    registry.set_challenger("nbo", meta.version, 0.3)
    assert registry.clear_challenger("nbo").challenger is None
