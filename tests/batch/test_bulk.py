"""The partition's bulk decisions (`batch.bulk`) against the core's `decide`, customer by customer, on the
same inputs: every customer the arrays cover is decided both ways and must come out the same."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.bulk import fast_mode
from batch.job import PrescoreJob, loaded
from batch.partition import Partition, decider_for
from batch.stats import RunStats
from decisioning.engine import Decision
from decisioning.summary import HistorySummary
from decisioning.types import DAY, ContactEvent, Outcome
from tests.batch.conftest import AS_OF, DEMO, write_customers


def _histories(catalogue, ids: list[str]) -> dict[str, HistorySummary]:
    """Half the customers have a history: recent unanswered contacts (the consistency boost), declines
    (cool-offs), e-mail sends (the weekly outbound cap), old contacts."""
    offers, out = catalogue.offers, {}
    for k, cid in enumerate(ids[::2]):
        a, b, c = offers[k % len(offers)], offers[(3 * k + 1) % len(offers)], offers[(7 * k + 2) % len(offers)]
        events = [
            ContactEvent(AS_OF - 40 * DAY, c.id, c.group, "web", Outcome.PRESENTED, f"o-{k}"),
            ContactEvent(AS_OF - 5 * DAY, a.id, a.group, "web", Outcome.PRESENTED, f"d-{k}"),
            ContactEvent(AS_OF - DAY, b.id, b.group, ("web", "email", "mobile")[k % 3], Outcome.PRESENTED, f"e-{k}"),
        ]  # fmt: skip
        if k % 3 == 0:
            events.append(ContactEvent(AS_OF - 4 * DAY, a.id, a.group, "web", Outcome.DECLINED, f"d-{k}"))
        if k % 4 == 0:
            sends = (ContactEvent(AS_OF - d * DAY, a.id, a.group, "email", Outcome.SENT, f"s-{k}-{d}") for d in (1, 2))
            events.extend(sends)
        out[cid] = HistorySummary().with_events(sorted(events, key=lambda e: e.at))
    return out


def _variant(tmp_path: Path, name: str, **edits: str) -> Path:
    target = tmp_path / name
    shutil.copytree(DEMO, target)
    path = target / "catalogue.yaml"
    text = path.read_text()
    for pattern, replacement in edits.items():
        text, count = re.subn(pattern, replacement, text)
        assert count, pattern
    path.write_text(text)
    return target


def _facts(d: Decision) -> tuple:
    offers = tuple(
        (p.offer.id, p.rank, p.treatment, p.propensity, p.value, p.lever, p.context_weight, p.boost, p.priority,
         p.selection_probability)
        for p in d.offers
    )  # fmt: skip
    return (d.decision_id, d.customer_id, offers, d.control_group, d.mode, d.direction, d.suppressions, d.scored,
            d.model_version, d.catalogue_version)  # fmt: skip


def _decider(tmp_path: Path, catalogue_dir: Path, channel: str, top: int, n: int = 600):
    catalogue = loaded(PrescoreJob("r-b", catalogue_dir, tmp_path / "none", "nbo", channel, top, AS_OF)).catalogue
    path = tmp_path / f"customers-{catalogue_dir.name}-{channel}.parquet"
    ids = write_customers(catalogue, path, n)
    summaries = {c: s.to_json() for c, s in _histories(catalogue, ids).items()}
    batch = pq.read_table(path).combine_chunks().to_batches()[0]
    job = PrescoreJob("r-b", catalogue_dir, tmp_path / "none", "nbo", channel, top, AS_OF)
    return decider_for(job, Partition(0, batch, summaries), RunStats())


@pytest.mark.parametrize(
    ("name", "edits", "channel", "top"),
    [
        ("shipped", {}, "email", 3),
        ("shipped", {}, "web", 3),
        ("explore", {r"epsilon: [0-9.]+": "epsilon: 0.6", r"max_per_group: 1": "max_per_group: 2"}, "web", 4),
        ("ungrouped", {r"max_per_group: 1 ": "max_per_group: null ", r"share: 0.05": "share: 0"}, "mobile", 5),
    ],
)
def test_every_bulk_decision_equals_the_cores(tmp_path: Path, name: str, edits: dict, channel: str, top: int):
    decider = _decider(tmp_path, _variant(tmp_path, f"{name}-{channel}", **edits), channel, top)
    n = len(decider.customers)
    in_bulk = [i for i in range(n) if decider.in_bulk(i)]
    for i in in_bulk:
        assert _facts(decider.bulk(i)) == _facts(decider.core(i)), decider.customers[i].customer_id
    # Not vacuous: most customers are decided from the arrays, histories and suppressions included, and
    # exploration picked something else than the best offer for some of them.
    with_history = [i for i in in_bulk if decider.summaries[i].events]
    assert len(in_bulk) > 0.6 * n and len(with_history) > 0.2 * n
    assert any(decider.bulk(i).suppressions for i in with_history)
    assert any(p.boost != 1.0 for i in with_history for p in decider.bulk(i).offers)
    if "explore" in name:
        assert any(p.selection_probability < 0.5 for i in in_bulk for p in decider.bulk(i).offers)


def test_the_control_group_and_caps_that_could_bind_are_left_to_the_core(tmp_path: Path):
    # Two offers per group: young_credit_cap (at most 2 credit offers, cards and loans) could now bind a
    # decision of 3, for the customers in its segment.
    decider = _decider(tmp_path, _variant(tmp_path, "caps", **{r"max_per_group: 1": "max_per_group: 2"}), "web", 3)
    core = [i for i in range(len(decider.customers)) if not decider.in_bulk(i)]
    control = [i for i in core if decider.decide(i).control_group]
    capped = [decider.customers[i].values for i in core if i not in control]
    assert control and capped
    assert all(v["age"] < 21 or v["segment"] == "student" for v in capped)
    # Without a history the cap leaves its threshold, 2: every young customer without one goes to the core
    # (with a history, the core's own policy evaluation says whether the cap is there at all).
    young = [i for i, c in enumerate(decider.customers) if c.values["age"] < 21 and not decider.summaries[i].events]
    assert young and not any(decider.in_bulk(i) for i in young)
    for i in (i for i in range(len(decider.customers)) if decider.in_bulk(i)):
        assert _facts(decider.bulk(i)) == _facts(decider.core(i))


def test_thompson_sampling_is_decided_by_the_core_for_everyone(tmp_path: Path):
    variant = _variant(tmp_path, "thompson", **{r"exploration: \{[^}]*\}": "exploration: {kind: thompson}"})
    decider = _decider(tmp_path, variant, "web", 3, n=60)
    assert fast_mode(decider.catalogue) is None
    assert not any(decider.in_bulk(i) for i in range(len(decider.customers)))
    assert all(d.mode in ("thompson", "control", "control_none") for d in map(decider.decide, range(60)))
