"""`nbo models ...` through the CLI on a temporary registry holding two trained tiny models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import Direction, Outcome
from history import SqlHistory
from history.migrate import upgrade
from models.comparison import normal_interval, wilson
from models.registry import ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, train_model

SPECS = (FeatureSpec("age", FeatureType.NUMBER, 40), FeatureSpec("income_monthly", FeatureType.NUMBER, 2500))


@pytest.fixture(scope="module")
def trained():
    data = synthetic_training_set(SPECS, synthetic_offers(4), rows=2_000)
    return [train_model(data, "nbo", TrainingConfig(num_trees=n, min_data_in_leaf=20)) for n in (2, 4)]


@pytest.fixture
def env(tmp_path: Path, trained) -> dict[str, str]:
    registry = ModelRegistry(tmp_path / "models")
    for i, model in enumerate(trained):
        registry.register(model.model_text(), model.metadata, now=NOW + 60 * i)
    return {"NBO_MODEL_DIR": str(tmp_path / "models"), "NBO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"}


def nbo(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def versions(env: dict[str, str]) -> list[str]:
    return [v["version"] for v in json.loads(nbo(env, "models", "list", "--json"))["versions"]]


def test_list_shows_every_version_with_its_role(env):
    first, second = versions(env)
    listed = json.loads(nbo(env, "models", "list", "--json"))
    assert [v["role"] for v in listed["versions"]] == ["champion", ""]
    assert listed["pointers"]["champion"] == first and listed["versions"][1]["training_rows"] > 0
    text = nbo(env, "models", "list")
    assert first in text and second in text and "champion" in text


def test_show_prints_a_versions_metadata_and_refuses_an_unknown_one(env):
    first, _ = versions(env)
    shown = json.loads(nbo(env, "models", "show", first))
    assert shown["version"] == first and shown["role"] == "champion" and "holdout" in shown["metrics"]
    assert "no version" in nbo(env, "models", "show", "19990101T000000Z-deadbeef", code=1)


def test_promote_then_rollback_returns_to_the_previous_champion(env):
    first, second = versions(env)
    assert f"champion of nbo: {second} (was {first})" in nbo(env, "models", "promote", second)
    assert json.loads(nbo(env, "models", "list", "--json"))["pointers"]["previous"] == [first]
    assert f"champion of nbo: {first} (rolled back from {second})" in nbo(env, "models", "rollback")
    assert json.loads(nbo(env, "models", "list", "--json"))["pointers"] == {
        "champion": first, "challenger": None, "challenger_share": 0.0, "previous": [],
    }  # fmt: skip
    assert "no previous champion" in nbo(env, "models", "rollback", code=1)


def test_a_challenger_gets_its_share_and_share_zero_removes_it(env):
    _, second = versions(env)
    assert "for 20% of customers" in nbo(env, "models", "challenger", second, "--share", "0.2")
    listed = json.loads(nbo(env, "models", "list", "--json"))
    assert [v["role"] for v in listed["versions"]] == ["champion", "challenger 0.2"]
    assert "between 0 and 1" in nbo(env, "models", "challenger", second, "--share", "1.5", code=2)
    assert "no challenger" in nbo(env, "models", "challenger", second, "--share", "0")
    # A promoted challenger stops being the challenger.
    nbo(env, "models", "challenger", second, "--share", "0.2")
    nbo(env, "models", "promote", second)
    assert json.loads(nbo(env, "models", "list", "--json"))["pointers"]["challenger"] is None


async def seed(url: str, cells: dict[tuple[str, bool], tuple[int, int]]) -> None:
    """(version, control) -> (contacts, accepted): one decision of one contact (value 100) per contact."""
    history = SqlHistory(url)
    await history.start()
    try:
        for (version, control), (n, accepted) in cells.items():
            for i in range(n):
                d = f"d-{version}-{control}-{i}"
                contact = ContactRecord(d, f"c-{i}", NOW, "web", Direction.INBOUND, "a", "cards", Outcome.PRESENTED,
                                        rank=1, value=100.0, model_version=version)  # fmt: skip
                await history.record_decision(
                    DecisionRecord(d, f"c-{i}", NOW, "web", None, None, control, version, "cat", (contact,))
                )
                if i < accepted:
                    await history.record_response(
                        ResponseRecord(f"r-{d}", f"c-{i}", "a", "web", Outcome.ACCEPTED, NOW + 1, d, "cards")
                    )
    finally:
        await history.close()


def test_compare_reports_champion_challenger_treated_and_control_with_intervals(env):
    first, second = versions(env)
    nbo(env, "models", "challenger", second, "--share", "0.5")
    upgrade(env["NBO_DATABASE_URL"])
    cells = {(first, False): (40, 4), (second, False): (50, 15), (first, True): (20, 1)}
    asyncio.run(seed(env["NBO_DATABASE_URL"], cells))
    report = json.loads(nbo(env, "models", "compare", "--json"))
    champion, challenger = report["models"]["champion"], report["models"]["challenger"]
    assert (champion["name"], champion["contacts"], champion["accepted"]) == (first, 40, 4)
    assert champion["acceptance"] == pytest.approx(0.1)
    assert champion["acceptance_95"] == pytest.approx(list(wilson(4, 40)))
    assert champion["value_per_contact"] == pytest.approx(10.0)
    assert champion["value_95"] == pytest.approx(list(normal_interval(400.0, 40_000.0, 40)))
    assert (challenger["contacts"], challenger["accepted"]) == (50, 15)
    treated, control = report["groups"]["treated"], report["groups"]["control"]
    assert (treated["decisions"], treated["contacts"], treated["accepted"]) == (90, 90, 19)
    assert (control["contacts"], control["accepted"]) == (20, 1) and control["acceptance_95"][0] < 0.05
    text = nbo(env, "models", "compare")
    assert "champion" in text and "control" in text and "10.00%" in text


def test_compare_says_in_one_line_when_the_history_cannot_be_read(env):
    assert "cannot read the contact history" in nbo(env, "models", "compare", code=1)


def test_the_intervals_are_the_textbook_ones():
    assert wilson(5, 100) == pytest.approx((0.02154, 0.11175), abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 0) is None
    # Values 0, 0, 10, 10: mean 5, sample sd 5.77, half-width 1.96 x 5.77 / 2.
    low, high = normal_interval(20.0, 200.0, 4)
    assert (low + high) / 2 == pytest.approx(5.0) and high - low == pytest.approx(2 * 1.959964 * 5.7735 / 2, rel=1e-4)


def test_each_rollback_goes_one_promotion_further_back_and_an_old_pointer_file_still_reads(env):
    first, second = versions(env)
    registry = ModelRegistry(env["NBO_MODEL_DIR"])
    for version in (second, first, second):
        registry.promote("nbo", version)
    assert registry.pointers("nbo").previous == (first, second, first)
    assert [registry.rollback("nbo").champion for _ in range(3)] == [first, second, first]
    assert "no previous champion" in nbo(env, "models", "rollback", code=1)
    # A pointer file written before promotion history existed: read as no history, nothing else lost.
    registry.pointers_path("nbo").write_text(f'{{"champion": "{second}", "challenger": null, "challenger_share": 0.0}}')
    assert registry.pointers("nbo").champion == second and registry.pointers("nbo").previous == ()
