"""LightGBMScorer: lleaves and LightGBM agree; new offers get their prior; the compiled model is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.types import Context, CustomerFeatures
from models.lightgbm_scorer import LightGBMScorer
from models.registry import ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, train_and_register
from tests.unit.factories import offer

SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40),
    FeatureSpec("income_monthly", FeatureType.NUMBER, 2500),
    FeatureSpec("card_spend_30d", FeatureType.NUMBER, 0),
    FeatureSpec("balance_current", FeatureType.NUMBER, 0),
    FeatureSpec("has_credit_card", FeatureType.BOOL, False),
    FeatureSpec("homeowner", FeatureType.BOOL, False),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("student", "young_adult", "mass", "affluent")),
    FeatureSpec("churn_signal_at", FeatureType.NUMBER, None),
)
OFFERS = synthetic_offers(12)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    data = synthetic_training_set(SPECS, OFFERS, rows=6_000)
    meta = train_and_register(registry, data, "t", TrainingConfig(num_trees=40, min_data_in_leaf=20))
    return registry.directory("t", meta.version)


@pytest.fixture(scope="module")
def compiled(model_dir: Path) -> LightGBMScorer:
    return LightGBMScorer.load(model_dir, engine="lleaves")


def random_rows(scorer: LightGBMScorer, n: int, seed: int = 0) -> np.ndarray:
    """Rows over the whole input space: wide numbers, categories beyond the known codes, NaNs anywhere."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 1, (n, len(scorer.encoder.columns))) * rng.choice([1, 100, 10_000], (n, 1))
    for j in scorer.encoder.categorical_indices:
        rows[:, j] = rng.integers(0, 20, n)
    rows[rng.random(rows.shape) < 0.15] = np.nan
    return rows


def test_compiled_and_lightgbm_predictions_agree_on_random_rows(compiled):
    rows = random_rows(compiled, 5_000)
    assert compiled.engine == "lleaves"
    assert np.max(np.abs(compiled.predict_raw(rows) - compiled.predict_lightgbm(rows))) <= 1e-9


def test_the_native_entry_point_gives_lleaves_own_predictions_and_odd_arrays_take_its_predict(compiled):
    rows = random_rows(compiled, 300, seed=4)
    assert compiled._entry is not None  # the fast path is the one under test
    own = compiled._compiled.predict(rows, n_jobs=1)
    assert np.array_equal(compiled.predict_raw(rows), own)
    assert np.array_equal(compiled.predict_raw(rows[:1]), own[:1])
    strided = np.asfortranarray(rows)  # not C-contiguous: lleaves' own predict copies it
    assert np.array_equal(compiled.predict_raw(strided), own)
    assert np.array_equal(
        compiled.predict_raw(rows.astype(np.float32)), compiled._compiled.predict(rows.astype(np.float32), n_jobs=1)
    )
    with pytest.raises(ValueError, match="dimension"):  # the wrong width is still refused, never read past
        compiled.predict_raw(rows[:, :-1].copy())


def test_scores_without_compilation_match_the_compiled_ones(model_dir, compiled):
    plain = LightGBMScorer.load(model_dir, compiled=False)
    customer, context = CustomerFeatures("c-1", {"age": 33, "card_spend_30d": 900.0}), Context("web", NOW)
    assert plain.engine == "lightgbm"
    assert np.max(np.abs(plain.score(customer, context, OFFERS) - compiled.score(customer, context, OFFERS))) <= 1e-9


def test_scores_are_calibrated_model_outputs_in_the_order_given(compiled):
    customer, context = CustomerFeatures("c-1", {"age": 29, "has_credit_card": False}), Context("mobile", NOW)
    scores = compiled.score(customer, context, OFFERS)
    expected = compiled.calibration.apply(compiled.predict_raw(compiled.encoder.encode(customer, context, OFFERS)))
    assert np.array_equal(scores, expected)
    assert np.array_equal(compiled.score(customer, context, OFFERS[::-1]), scores[::-1])
    assert np.all((scores > 0) & (scores < 1))


def test_an_offer_the_model_never_saw_scores_its_prior(compiled):
    newcomer = offer("offer_new", OFFERS[0].group, prior=0.123)
    scores = compiled.score(CustomerFeatures("c-1", {}), Context("web", NOW), [OFFERS[0], newcomer, OFFERS[1]])
    assert scores[1] == 0.123
    assert scores[0] != OFFERS[0].prior


def test_no_offers_no_scores(compiled):
    assert compiled.score(CustomerFeatures("c", {}), Context("web", NOW), []).shape == (0,)


def test_the_compiled_model_is_cached_beside_the_model_and_reused(model_dir, compiled):
    cached = list(model_dir.glob("lleaves-*.o"))
    assert len(cached) == 1
    before = cached[0].stat().st_mtime_ns
    again = LightGBMScorer.load(model_dir, engine="lleaves")
    assert cached[0].stat().st_mtime_ns == before
    rows = random_rows(compiled, 100, seed=3)
    assert np.array_equal(again.predict_raw(rows), compiled.predict_raw(rows))
    assert not list(model_dir.glob("*.tmp"))


def test_the_cache_can_live_elsewhere_and_is_keyed_by_the_model_content(model_dir, tmp_path):
    LightGBMScorer.load(model_dir, cache_dir=tmp_path / "cache")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.txt", "metadata.json"):
        (copy / name).write_bytes((model_dir / name).read_bytes())
    with (copy / "model.txt").open("a") as f:
        f.write("\n")  # same trees, different bytes: a different cache key
    LightGBMScorer.load(copy, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("lleaves-*.o"))) == 2


def test_an_unknown_engine_is_refused(model_dir):
    with pytest.raises(ValueError, match="engine"):
        LightGBMScorer.load(model_dir, engine="gpu")


def test_a_failing_compiler_falls_back_to_lightgbm_unless_lleaves_is_required(model_dir, monkeypatch, caplog):
    import lleaves

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("PassManagerBuilder")

    monkeypatch.setattr(lleaves.Model, "compile", broken)
    (cached,) = model_dir.glob("lleaves-*.o")
    cached.rename(cached.with_suffix(".bak"))  # force a real compile attempt
    try:
        assert LightGBMScorer.load(model_dir).engine == "lightgbm"
        assert "predicting with LightGBM" in caplog.text
        with pytest.raises(RuntimeError, match="PassManagerBuilder"):
            LightGBMScorer.load(model_dir, engine="lleaves")
    finally:
        cached.with_suffix(".bak").rename(cached)
