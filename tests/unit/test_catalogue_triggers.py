"""`triggers.yaml`: loaded into the catalogue, and every problem named by file, trigger and position."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policies.loader import catalogue_version, load_catalogue, validate_catalogue
from policies.problems import CatalogueError

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(DEMO, target)
    return target


def test_the_demo_triggers_load_with_their_channel_period_and_the_features_they_read():
    triggers = {t.name: t for t in load_catalogue(DEMO).triggers}
    assert sorted(triggers) == ["card_declined", "competitor_transfer", "two_large_withdrawals"]
    card = triggers["card_declined"]
    assert (card.channel, card.period_seconds, card.max_offers) == ("sms", 86_400.0, 1)
    assert card.reads == {"card_declined_count", "card_declined_last_at"}


def test_a_catalogue_without_triggers_yaml_has_no_triggers_and_the_file_is_part_of_the_version(copy: Path):
    with_triggers = catalogue_version(copy)
    (copy / "triggers.yaml").unlink()
    assert load_catalogue(copy).triggers == () and catalogue_version(copy) != with_triggers


def test_every_problem_names_the_file_the_trigger_and_the_position(copy: Path):
    (copy / "triggers.yaml").write_text(
        "triggers:\n"
        "  typo:\n"
        "    when: card_declined_count >= 1 and agee > 18\n"
        "    channel: sms\n"
        "    period: {days: 1}\n"
        "  inbound:\n"
        "    when: card_declined_count >= 1\n"
        "    channel: smss\n"
        "    period: {days: 1, hours: 2}\n"
        "  batch_only:\n"
        "    when: age >= 18\n"
        "    channel: email\n"
        "    period: {hours: 1}\n"
        "  history:\n"
        "    when: card_declined_count >= 1 and count(outcome='sent', days=7) == 0\n"
        "    chanel: sms\n"
        "    period: {days: 1}\n"
    )
    problems = [str(p) for p in validate_catalogue(copy)]
    file = str(copy / "triggers.yaml")
    assert all(p.startswith(f"{file}: trigger ") for p in problems), problems
    assert f"{file}: trigger typo (entry 1): when: unknown feature 'agee'" in problems[0]
    assert "(column 30)" in problems[0] and "did you mean 'age'" in problems[0]
    inbound = [p for p in problems if "trigger inbound (entry 2)" in p]
    assert any("give the period in days or in hours" in p for p in inbound)
    batch = [p for p in problems if "trigger batch_only (entry 3): when" in p]
    assert batch and "reads no feature an event writes" in batch[0]
    history = [p for p in problems if "trigger history (entry 4)" in p]
    assert any("unknown field 'chanel' (did you mean 'channel'?)" in p for p in history)
    with pytest.raises(CatalogueError):
        load_catalogue(copy)


def test_a_channel_that_is_not_outbound_and_a_history_condition_are_refused(copy: Path):
    (copy / "triggers.yaml").write_text(
        "triggers:\n"
        "  web:\n"
        "    when: card_declined_count >= 1\n"
        "    channel: smss\n"
        "    period: {days: 1}\n"
        "  history:\n"
        "    when: card_declined_count >= 1 and count(outcome='sent', days=7) == 0\n"
        "    channel: sms\n"
        "    period: {days: 1}\n"
    )
    web, history = map(str, validate_catalogue(copy))
    assert "trigger web (entry 1): channel: 'smss' is not an outbound channel of catalogue.yaml" in web
    assert "did you mean 'sms'" in web and "(outbound: email, sms)" in web
    assert "trigger history (entry 2): when: a trigger condition reads the features, not the history" in history


def test_a_file_that_is_not_a_mapping_of_triggers_is_one_problem(copy: Path):
    (copy / "triggers.yaml").write_text("triggers: [a, b]\n")
    [problem] = validate_catalogue(copy)
    assert str(problem).startswith(str(copy / "triggers.yaml")) and "triggers" in str(problem)
