"""Scoring a partition in one call gives exactly what scoring each customer gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from batch.scoring import Prescored, prescored
from decisioning.ports import CustomerSnapshot
from decisioning.quality import validate_features
from decisioning.types import Context
from models.demo.customers import generate_customers
from models.prior import PriorScorer
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainingConfig, train_and_register
from policies.loader import load_catalogue
from tests.batch.conftest import AS_OF, DEMO


def test_score_many_equals_score_customer_by_customer(tmp_path: Path):
    catalogue = load_catalogue(DEMO)
    known = list(catalogue.offers[:20])
    data = synthetic_training_set(catalogue.features, known, rows=4000, seed=2)
    train_and_register(ModelRegistry(tmp_path), data, "nbo", TrainingConfig(num_trees=10, min_data_in_leaf=20))
    scorer = ModelRegistry(tmp_path).scorer("nbo")
    people = generate_customers(60, catalogue.features, seed=5, now=AS_OF)
    customers = [validate_features(catalogue.features, c, CustomerSnapshot(c, v), AS_OF) for c, v in people]
    new = replace(catalogue.offers[25], id="brand_new", prior=0.077)  # the model never saw it: its prior
    rng = np.random.default_rng(0)
    pool = [*catalogue.offers, new]
    offers = [[pool[i] for i in sorted(rng.choice(len(pool), size=int(rng.integers(0, 8)), replace=False))]
              for _ in customers]  # fmt: skip
    context = Context("email", AS_OF, intent="complaint")
    got = prescored(scorer, customers, context, offers)
    assert all(isinstance(s, Prescored) and s.version == scorer.version for s in got)
    for customer, mine, bulk in zip(customers, offers, got, strict=True):
        assert bulk.score(customer, context, mine).tolist() == scorer.score(customer, context, mine).tolist()
    assert any(o.id == "brand_new" for group in offers for o in group)


def test_a_scorer_without_score_many_scores_each_customer_itself():
    scorer = PriorScorer()
    assert prescored(scorer, [], Context("web", AS_OF), []) == []
