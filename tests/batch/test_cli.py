"""`nbo prescore` and `nbo outbound record` from the command line, on the embedded stores."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli
from policies.loader import load_catalogue
from tests.batch.conftest import DEMO, write_customers


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    features = tmp_path / "customers.parquet"
    write_customers(load_catalogue(DEMO), features, 40)
    for name, value in {
        "ENVIRONMENT": "test", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
        "FEATURES_FILE": str(features), "MODEL_DIR": str(tmp_path / "models"), "BATCH_DIR": str(tmp_path / "runs"),
    }.items():  # fmt: skip
        monkeypatch.setenv(f"NBO_{name}", value)
    return tmp_path


def test_prescore_then_record_the_list(env: Path):
    runner = CliRunner()
    out = env / "list.parquet"
    args = ["prescore", "--channel", "email", "--top", "2", "--out", str(out), "--as-of", "2026-11-23T06:00:00Z",
            "--workers", "1", "--run-id", "r-cli", "--partition-size", "15", "--no-progress"]  # fmt: skip
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "customers: 40" in first.output and "3 partitions (0 resumed)" in first.output
    again = runner.invoke(cli, args)
    assert "3 partitions (3 resumed)" in again.output, again.output
    summary = orjson.loads((env / "runs" / "r-cli" / "summary.json").read_bytes())
    assert summary["as_of"] == 1795413600.0 and summary["customers"] == 40
    sent = sum(1 for r in pq.read_table(out).to_pylist() if r["offer_id"])
    recorded = runner.invoke(cli, ["outbound", "record", str(out), "--channel", "email", "--campaign", "nov"])
    assert recorded.exit_code == 0, recorded.output
    assert f"received {sent} sends; recorded {sent} new" in recorded.output
    twice = runner.invoke(cli, ["outbound", "record", str(out), "--channel", "email"])
    assert "recorded 0 new" in twice.output
