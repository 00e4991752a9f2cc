"""`nbo evaluate --catalogue` and `nbo replay` refuse what they cannot evaluate in one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli

DEMO = Path(__file__).resolve().parents[3] / "policies" / "demo"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"NBO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", "NBO_MODEL_DIR": str(tmp_path / "m")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--catalogue", "/no/such/dir"], "--catalogue: /no/such/dir is not a directory"),
        (["evaluate", "--catalogue", str(DEMO), "--model", "v9"], "--model: model 'nbo' has no version v9"),
        (["evaluate", "--catalogue", str(DEMO), "--since", "yesterday"], "--since: not an ISO date"),
        (["evaluate", "--catalogue", str(DEMO), "--clip", "-1"], "--clip: must be a positive weight"),
        (["replay"], "give a candidate"),
        (["replay", "--catalogue", str(DEMO)], "cannot be read: (sqlite3.OperationalError) no such table"),
    ],
)
def test_refusals_are_one_line(env: dict[str, str], args: list[str], message: str):
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_an_invalid_catalogue_names_its_first_problem(env: dict[str, str], tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "catalogue.yaml").write_text("channels: [web]\narbitration: {exploration: {kind: sometimes}}\n")
    result = CliRunner().invoke(cli, ["replay", "--catalogue", str(broken)], env=env)
    assert result.exit_code == 2 and "is invalid" in result.stderr and "exploration" in result.stderr


def test_nothing_to_estimate_is_one_line_and_exit_code_1(env: dict[str, str]):
    from history.migrate import upgrade

    upgrade(env["NBO_DATABASE_URL"])  # an empty, migrated history: no decision to evaluate
    result = CliRunner().invoke(cli, ["evaluate", "--catalogue", str(DEMO), "--json"], env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("not evaluated: 0 logged decisions") and "no settled logged" in result.stderr


def test_the_history_is_read_from_the_read_replica_when_one_is_set(env: dict[str, str], tmp_path: Path):
    from history.migrate import upgrade

    upgrade(env["NBO_DATABASE_URL"])  # the primary is migrated; the "replica" below is an empty file
    replica = f"sqlite+aiosqlite:///{tmp_path / 'replica.db'}"
    result = CliRunner().invoke(
        cli, ["evaluate", "--catalogue", str(DEMO)], env={**env, "NBO_DATABASE_READ_URL": replica}
    )
    assert result.exit_code == 2 and "replica.db cannot be read" in result.stderr, result.stderr
