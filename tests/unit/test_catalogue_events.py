"""`events.yaml` is part of the catalogue's validation: `nbo catalogue validate` lists its problems too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from policies import DEMO_DIRECTORY, catalogue_version, validate_catalogue


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_DIRECTORY, tmp_path / "demo"))


def edit_events(directory: Path, old: str, new: str) -> Path:
    events = directory / "events.yaml"
    text = events.read_text()
    assert old in text
    events.write_text(text.replace(old, new, 1))
    return events


def validate(directory: Path):
    return CliRunner().invoke(cli, ["catalogue", "validate", str(directory)])


def test_the_demo_catalogue_and_its_events_validate() -> None:
    result = validate(DEMO_DIRECTORY)
    assert result.exit_code == 0, result.output
    assert f"valid (version {catalogue_version(DEMO_DIRECTORY)})" in result.output


def test_problems_of_events_yaml_are_listed_with_file_and_place(demo_copy: Path) -> None:
    events = edit_events(demo_copy, "when: amount >= 5000", "when: amount >= 5000 and colour == 'red'")
    edit_events(demo_copy, "{feature: app_login_last_at, op: max", "{feature: app_login_at, op: max")
    problems = validate_catalogue(demo_copy)
    assert [(p.file, p.location) for p in problems] == [
        (str(events), "event withdrawal: rules.0: when"),
        (str(events), "event app_login: rules.0: updates.0"),
    ]
    assert "unknown feature 'colour' (column 20)" in problems[0].message
    assert problems[1].message == "'app_login_at' is not a feature declared with source: event"
    result = validate(demo_copy)
    assert result.exit_code == 1
    assert f"{events}: event app_login: rules.0: updates.0: 'app_login_at' is not a feature" in result.output


def test_a_yaml_error_in_events_yaml_gives_its_line(demo_copy: Path) -> None:
    events = edit_events(demo_copy, "  card_declined:\n", "  card_declined:\n   - oops: [\n")
    [problem] = validate_catalogue(demo_copy)
    assert problem.file == str(events) and problem.location.startswith("line ")
    assert validate(demo_copy).exit_code == 1


def test_a_duplicate_event_is_refused(demo_copy: Path) -> None:
    events = demo_copy / "events.yaml"
    events.write_text(events.read_text() + "  app_login:\n    rules: [{updates: [{feature: x, op: incr}]}]\n")
    [problem] = validate_catalogue(demo_copy)
    assert "duplicate key 'app_login'" in problem.message


def test_the_shape_of_each_event_is_checked_on_its_own(demo_copy: Path) -> None:
    edit_events(demo_copy, "op: incr}", "op: double}")
    edit_events(demo_copy, "    description: A cash withdrawal.", "    descripton: A cash withdrawal.")
    problems = {p.location: p.message for p in validate_catalogue(demo_copy)}
    assert set(problems) == {"event card_declined", "event withdrawal"}
    assert "rules.0.updates.0.op" in problems["event card_declined"]
    assert problems["event withdrawal"] == "unknown field 'descripton' (did you mean 'description'?)"


def test_without_events_yaml_the_catalogue_has_no_event_types(demo_copy: Path) -> None:
    (demo_copy / "events.yaml").unlink()
    assert validate_catalogue(demo_copy) == []


def test_events_are_checked_against_the_features_even_when_the_offers_are_broken(demo_copy: Path) -> None:
    offers = demo_copy / "offers.yaml"
    offers.write_text(offers.read_text().replace("group: cards", "group: crads", 1))
    edit_events(demo_copy, "{feature: app_login_last_at, op: max", "{feature: app_login_at, op: max")
    files = [Path(p.file).name for p in validate_catalogue(demo_copy)]
    assert files == ["offers.yaml", "events.yaml"]
