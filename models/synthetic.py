"""Synthetic offers and training sets for tests and benchmarks: N offers over the demo groups, and
(customer, offer, channel) contacts labelled by the demo ground truth.

>>> len(synthetic_offers(3))
3
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decisioning.catalogue import Offer, Treatment
from decisioning.types import DAY
from models.dataset import TrainingSet
from models.demo.customers import generate_customers
from models.demo.truth import GROUP_TERMS, GroundTruth
from models.encoding import EncodingRow, FeatureEncoder, SpecLike

CHANNELS = ("web", "mobile", "call_centre")
NOW = 1_790_000_000.0


def synthetic_offers(n: int, seed: int = 0) -> list[Offer]:
    """`n` offers spread over the demo groups, with priors between 1% and 20%."""
    from decisioning.rules import compile_rule

    rng = np.random.default_rng(seed)
    groups = sorted(GROUP_TERMS)
    treatments = {c: Treatment(c, "Synthetic offer") for c in CHANNELS}
    value = compile_rule("0", kind="number")
    return [
        Offer(f"offer_{i:03d}", f"Offer {i}", groups[i % len(groups)], f"product_{i}", treatments, (), value,
              prior=float(rng.uniform(0.01, 0.2)))
        for i in range(n)
    ]  # fmt: skip


def synthetic_training_set(
    specs: Sequence[SpecLike], offers: Sequence[Offer], rows: int = 60_000, seed: int = 0
) -> TrainingSet:
    """Random (customer, offer, channel) contacts over a month, labelled by the demo ground truth."""
    rng = np.random.default_rng(seed)
    customers = [v for _, v in generate_customers(5_000, specs, seed=seed, now=NOW)]
    truth = GroundTruth(seed)
    encoder = FeatureEncoder(specs, [o.id for o in offers], sorted({o.group for o in offers}), CHANNELS, [])
    who, what, where = (rng.integers(n, size=rows) for n in (len(customers), len(offers), len(CHANNELS)))
    when = NOW - rng.uniform(0, 30, rows) * DAY
    sample = [
        (customers[c], offers[o], CHANNELS[ch], float(at)) for c, o, ch, at in zip(who, what, where, when, strict=True)
    ]
    labels = [rng.random() < truth.probability(v, o, ch, None, at) for v, o, ch, at in sample]
    encoded = encoder.encode_many([EncodingRow(v, o.id, o.group, ch, None, at) for v, o, ch, at in sample])
    ats = np.array([s[3] for s in sample])
    return TrainingSet(encoder, encoded, np.array(labels, float), ats, np.array([s[1].id for s in sample], object))
