"""`nbo simulate` on a small bank: reproducible, contact policies at work, the oracle ahead, the JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli
from decisioning.types import DAY
from simulation.compare import SimulationSpec, compare, run_policy
from simulation.run import START

CUSTOMERS, DAYS, SEED = 1500, 4, 3


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], Path]:
    log = tmp_path_factory.mktemp("sim") / "random.parquet"
    spec = SimulationSpec(CUSTOMERS, DAYS, SEED, retrain_days=3, logs={"random": log}, log_targets=("push",))
    return compare(spec, workers=1), log


def test_a_seed_gives_the_same_run(small: tuple[dict[str, dict[str, Any]], Path]) -> None:
    results, _ = small
    again = run_policy(SimulationSpec(CUSTOMERS, DAYS, SEED, retrain_days=3), "nbo")
    volatile = ("seconds", "peak_memory_mb", "trainings")
    assert {k: v for k, v in again.items() if k not in volatile} == {
        k: v for k, v in results["nbo"].items() if k not in volatile
    }
    assert [t["rows"] for t in again["trainings"]] == [t["rows"] for t in results["nbo"]["trainings"]]
    other = run_policy(SimulationSpec(CUSTOMERS, DAYS, SEED + 1), "random")
    assert other["value_per_day"] != results["random"]["value_per_day"]


Small = tuple[dict[str, dict[str, Any]], Path]


def test_the_nbo_retrains_on_its_own_history_and_serves_each_model(small: Small) -> None:
    nbo = small[0]["nbo"]
    assert [t["day"] for t in nbo["trainings"]] == [3]
    assert set(nbo["value_per_contact_by_model"]) == {"priors (day 0)", "model 1 (day 3)"}
    assert nbo["trainings"][0]["rows"] > 150


def test_contact_policies_suppress_and_are_counted(small: tuple[dict[str, dict[str, Any]], Path]) -> None:
    results, log = small
    for r in results.values():
        assert r["suppressions"].get("offer_cap_7d", 0) > 0
        assert sum(r["suppressions"].values()) > 0
    # and they hold: no customer saw one offer more than twice in 7 days (offer_cap_7d), in any channel
    rows = pq.read_table(log).to_pydict()
    shown: dict[tuple[int, str], list[int]] = defaultdict(list)
    for customer, offer, day in zip(rows["customer"], rows["offer_id"], rows["day"], strict=True):
        shown[(customer, offer)].append(day)
    assert max(len(days) for days in shown.values()) <= 2
    assert any(len(days) == 2 for days in shown.values())


def test_the_oracle_beats_random_and_push_with_the_same_visits(small: tuple[dict[str, dict[str, Any]], Path]) -> None:
    results, _ = small
    assert results["oracle"]["value_per_contact"] > 1.5 * results["random"]["value_per_contact"]
    assert results["oracle"]["value_per_contact"] > results["push"]["value_per_contact"]
    assert len({r["decisions"] for r in results.values()}) == 1  # everyone met the same visits


def test_the_log_carries_the_issue_16_columns(small: tuple[dict[str, dict[str, Any]], Path]) -> None:
    rows = pq.read_table(small[1]).to_pydict()
    for column in ("reward", "logging_probability", "target_probability_push", "position", "decision_id"):
        assert column in rows
    assert all(0 < p <= 1 for p in rows["logging_probability"])
    assert set(rows["target_probability_push"]) <= {0.0, 1.0}
    assert min(rows["day"]) == 0 and max(rows["day"]) == DAYS - 1
    assert START + DAYS * DAY > START


def test_nbo_simulate_writes_the_json_with_every_policy(tmp_path: Path) -> None:
    out, plot = tmp_path / "sim.json", tmp_path / "sim.png"
    result = CliRunner().invoke(cli, ["simulate", "--customers", "300", "--days", "2", "--seed", "1",
                                      "--workers", "1", "--json", str(out), "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    for policy in ("nbo", "random", "push", "oracle"):
        assert {"value_per_contact", "acceptance_rate"} <= set(document[policy])
    assert document["run"]["customers"] == 300
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "value / contact" in result.output and "run time" in result.output


def test_an_unknown_policy_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--customers", "100", "--days", "1", "--policies", "nbo,greedy"])
    assert result.exit_code == 2
    assert "unknown policies ['greedy']" in result.output
