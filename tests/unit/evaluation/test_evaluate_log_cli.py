"""`nbo evaluate --log FILE` on small CSV and Parquet files: the estimates by hand, `--json` parsed, the
reward model's variants, and one-line errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli
from evaluation.logs import LogFileError, evaluate_log

# w = [2, 2, 0.5, 0]; w r = [2, 0, 0.5, 0]: IPS 2.5/4, SNIPS 2.5/4.5.
ROWS = {
    "reward": [1.0, 0.0, 1.0, 0.0],
    "logging_probability": [0.5, 0.25, 1.0, 0.5],
    "target_probability": [1.0, 0.5, 0.5, 0.0],
    "decision_id": ["d1", "d1", "d2", "d3"],
    "position": [1, 2, 1, 1],
}


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    names = list(columns)
    lines = [",".join(names)] + [",".join(str(columns[n][i]) for n in names) for i in range(len(columns[names[0]]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def evaluate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["evaluate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("write", [write_csv, write_parquet], ids=["csv", "parquet"])
def test_json_output_has_the_hand_computed_estimates(tmp_path: Path, write):
    path = write(tmp_path / ("log.csv" if write is write_csv else "log.parquet"), ROWS)
    code, out, _ = evaluate("--log", str(path), "--json", "--bootstrap", "200")
    assert code == 0
    document = orjson.loads(out)
    assert document["ips"]["estimate"] == pytest.approx(2.5 / 4, abs=1e-12)
    assert document["snips"]["estimate"] == pytest.approx(2.5 / 4.5, abs=1e-12)
    assert document["dr"] is None, "no q columns and no feature columns: no reward model"
    assert document["rows"] == 4 and document["max_weight"] == 2.0
    assert set(document["ips"]) == {"estimate", "low", "high"}


def test_clipping_is_applied_and_reported(tmp_path: Path):
    path = write_csv(tmp_path / "log.csv", ROWS)
    document = orjson.loads(evaluate("--log", str(path), "--json", "--clip", "1")[1])
    assert document["ips"]["estimate"] == pytest.approx(1.5 / 4, abs=1e-12)
    assert document["clipping"] == {"clipped_at": 1.0, "clipped_rows": 2}


def test_given_q_columns_make_dr(tmp_path: Path):
    columns = {**ROWS, "q_logged": [0.25] * 4, "q_target": [0.4] * 4}
    document = orjson.loads(evaluate("--log", str(write_csv(tmp_path / "log.csv", columns)), "--json")[1])
    assert document["dr"]["estimate"] == pytest.approx((1.9 - 0.1 + 0.775 + 0.4) / 4, abs=1e-12)
    assert document["reward_model"] == "given"


def test_feature_columns_get_a_cross_fitted_baseline(tmp_path: Path):
    # Two offers; the reward follows the customer's segment, not the offer, so the target's value is the
    # mean acceptance of the segments (0.45). The logging policy picks offer A with a varying probability,
    # the target (greedy) always or never: widely varying weights, which the baseline's control variate
    # tames (by hand: the variance per row falls from about 1.6 to 0.6).
    rng = np.random.default_rng(1)
    n = 2000
    segment = rng.choice(["mass", "affluent"], n)
    rate = np.where(segment == "affluent", 0.8, 0.1)
    reward = rng.binomial(1, rate).astype(float)
    p_logging, p_target = rng.uniform(0.02, 0.98, n), rng.integers(0, 2, n).astype(float)
    chose_a = rng.uniform(size=n) < p_logging
    logging = np.where(chose_a, p_logging, 1 - p_logging)
    target = np.where(chose_a, p_target, 1 - p_target)
    columns = {"reward": reward, "logging_probability": logging, "target_probability": target, "segment": segment}
    path = write_parquet(tmp_path / "log.parquet", {k: list(v) for k, v in columns.items()})
    result = evaluate_log(path, bootstrap=300)
    assert result.reward_model == "cross-fitted baseline on 1 features"
    dr, ips = result.estimates.dr, result.estimates.ips
    assert dr is not None
    assert dr.high - dr.low < 0.8 * (ips.high - ips.low)
    assert dr.low < float(rate.mean()) < dr.high


def test_the_table_shows_every_estimator(tmp_path: Path):
    code, out, _ = evaluate("--log", str(write_csv(tmp_path / "log.csv", ROWS)), "--bootstrap", "50")
    assert code == 0
    for text in ("IPS", "SNIPS", "DR", "0.625", "effective sample size", "largest weight 2", "no clipping"):
        assert text in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reward": None}, "missing column 'reward'"),
        ({"logging_probability": [0.5, 0.0, 1.0, 0.5]}, r"logging_probability: row 1 is outside \(0, 1\]"),
        ({"target_probability": [1.0, 0.5, 1.5, 0.0]}, r"target_probability: row 2 is outside \[0, 1\]"),
        ({"reward": [1, "yes", 1, 0]}, "reward: row 1 is not a number"),
        ({"reward": [1, "", 1, 0]}, "reward: row 1 is not a finite number"),
        ({"q_logged": [0.1] * 4}, "missing column 'q_target'"),
        ({"decision_id": ["d1", "", "d2", "d3"]}, "decision_id: row 1 is empty"),
    ],
)
def test_bad_files_are_one_line_errors_with_exit_code_2(tmp_path: Path, change: dict, message: str):
    columns = {k: v for k, v in {**ROWS, **change}.items() if v is not None}
    code, out, err = evaluate("--log", str(write_csv(tmp_path / "log.csv", columns)), "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_options_and_missing_files_are_refused(tmp_path: Path):
    assert evaluate("--log", str(tmp_path / "none.csv"))[0] == 2
    code, _, err = evaluate("--log", str(write_csv(tmp_path / "log.csv", ROWS)), "--clip", "0")
    assert code == 2 and "--clip" in err
    code, _, err = evaluate("--log", str(tmp_path / "log.csv"), "--bootstrap", "0")
    assert code == 2 and "--bootstrap" in err
    code, _, err = evaluate()
    assert code == 2 and "--log FILE" in err
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    code, _, err = evaluate("--log", str(tmp_path / "broken.parquet"))
    assert code == 2 and "cannot be read" in err


def test_evaluate_log_raises_a_log_file_error(tmp_path: Path):
    with pytest.raises(LogFileError, match="missing column 'target_probability'"):
        evaluate_log(write_csv(tmp_path / "log.csv", {"reward": [1], "logging_probability": [0.5]}))
