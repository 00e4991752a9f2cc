"""The catalogue loader on bad catalogues: every problem is found, and each names its file, entry and rule."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import CatalogueError, Problem, load_catalogue, validate_catalogue

CATALOGUE: dict[str, Any] = {
    "channels": ["web", "call_centre", "email"],
    "timezone": "Europe/Amsterdam",
    "groups": [
        {"id": "cards", "name": "Cards", "eligibility": {"adult": "age >= 18"}},
        {"id": "service", "name": "Service"},
    ],
}
OFFERS: dict[str, Any] = {
    "offers": [
        {
            "id": "card_gold",
            "name": "Gold card",
            "group": "cards",
            "product": "gold",
            "channels": {"web": {"title": "Go gold"}},
            "applicability": {"no_card": "not has_credit_card"},
        },
        {
            "id": "app",
            "name": "App",
            "group": "service",
            "product": "app",
            "marketing": False,
            "channels": {
                "web": {"title": "Get the app"},
                "call_centre": {"title": "App", "script": "Offer it"},
            },
        },
    ]
}
POLICIES: dict[str, Any] = {
    "policies": [
        {"id": "cap", "count": ["presented"], "level": "offer", "window": {"days": 7}, "threshold": 3},
    ]
}
FEATURES: dict[str, Any] = {
    "features": [
        {"name": "age", "type": "number", "min": 16, "max": 110, "default": 40},
        {"name": "has_credit_card", "type": "bool", "default": False},
        {"name": "segment", "type": "category", "categories": ["mass", "affluent"], "default": "mass"},
    ]
}


def write(directory: Path, **files: Any) -> Path:
    """A catalogue directory with the good files above, `files` (name without .yaml -> data) replacing them.

    A str value is written as is (for YAML syntax errors); None leaves the file out.
    """
    contents = {"catalogue": CATALOGUE, "offers": OFFERS, "policies": POLICIES, "features": FEATURES} | files
    for name, data in contents.items():
        if data is not None:
            text = (
                data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
            )
            (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def offers_with(**changes: Any) -> dict[str, Any]:
    """OFFERS with fields of the first offer (card_gold, entry 1) changed."""
    data = copy.deepcopy(OFFERS)
    data["offers"][0].update(changes)
    return data


def policy_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(POLICIES)
    data["policies"][0].update(changes)
    return data


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_the_minimal_catalogue_loads(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path))

    assert [o.id for o in catalogue.offers] == ["card_gold", "app"]
    assert [r.name for r in catalogue.offer("card_gold").rules] == ["adult", "no_card"]


def test_unknown_feature_names_file_offer_rule_and_column(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(eligibility={"rich": "age >= 18 and incme > 3000"}))

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "offers.yaml")
    assert problem.location == "offer card_gold (offers.yaml entry 1): eligibility rule 'rich'"
    assert "incme" in problem.message
    assert "column 15" in problem.message
    assert "age >= 18 and incme > 3000" in problem.message


def test_rule_syntax_error_names_the_position(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(suitability={"broken": "age >= > 3"}))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): suitability rule 'broken'"
    assert problem.message == "syntax error: invalid syntax (column 8): age >= > 3"


def test_group_rule_error_names_the_group(tmp_path: Path) -> None:
    catalogue = copy.deepcopy(CATALOGUE)
    catalogue["groups"][0]["eligibility"] = {"adult": "agee >= 18"}
    write(tmp_path, catalogue=catalogue)

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "catalogue.yaml")
    assert problem.location == "group cards (catalogue.yaml groups entry 1): eligibility rule 'adult'"
    assert "agee" in problem.message and "column 1" in problem.message


def test_value_expression_is_checked_as_a_rule(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(value="income * 0.05"))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): value"
    assert "income" in problem.message


def test_duplicate_offer_ids_across_files(tmp_path: Path) -> None:
    second = {"offers": [copy.deepcopy(OFFERS["offers"][1])]}
    write(tmp_path, offers_more=second)

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "offers_more.yaml")
    assert "duplicate offer id 'app'" in problem.message
    assert "offers.yaml entry 2" in problem.message  # where it was first defined


def test_unknown_group_suggests_the_close_one(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(group="crads"))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): group"
    assert problem.message == "unknown group 'crads' (did you mean 'cards'?)"


def test_channel_not_in_the_catalogue(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(channels={"web": {"title": "a"}, "sms": {"title": "b"}}))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): channels"
    assert "channel 'sms' is not one of the catalogue's channels (web, call_centre, email)" in problem.message


def test_start_not_before_end(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(start="2026-05-01", end="2026-05-01"))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): end"
    assert "is not after start" in problem.message


def test_budget_limit_below_one(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(budget={"limit": 0, "period": "day"}))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1)"
    assert problem.message.startswith("budget.limit: ")
    assert "greater than or equal to 1" in problem.message


def test_misspelt_field_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    data = offers_with(elgibility={"adult": "age >= 18"})
    data["offers"][1]["channels"]["web"]["titel"] = "x"
    write(tmp_path, offers=data)

    messages = [p.message for p in validate_catalogue(tmp_path)]

    assert "unknown field 'elgibility' (did you mean 'eligibility'?)" in messages
    assert "unknown field 'channels.web.titel' (did you mean 'title'?)" in messages


def test_history_call_on_an_unknown_offer(tmp_path: Path) -> None:
    rule = "days_since(offer='card_glod', outcome='accepted') < 30"
    write(tmp_path, offers=offers_with(applicability={"after": rule}))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer card_gold (offers.yaml entry 1): applicability rule 'after'"
    assert "unknown offer 'card_glod' (did you mean 'card_gold'?)" in problem.message


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    data = offers_with(budget={"limit": -5})
    data["offers"][1]["eligibility"] = {"bad": "agee > 1"}
    data["offers"].append(copy.deepcopy(data["offers"][1]))
    write(tmp_path, offers=data, policies=policy_with(level="everything"))

    with pytest.raises(CatalogueError) as raised:
        load_catalogue(tmp_path)

    locations = [p.location for p in raised.value.problems]
    assert locations == [
        "offer card_gold (offers.yaml entry 1)",  # budget.limit (schema checks come first)
        "policy cap (policies.yaml entry 1)",  # level
        "offer app (offers.yaml entry 3)",  # duplicate id
        "offer app (offers.yaml entry 2): eligibility rule 'bad'",
    ]
    lines = str(raised.value).splitlines()
    assert lines[0] == "invalid catalogue (4 problems):"
    assert lines[1:] == [str(p) for p in raised.value.problems]


def test_entry_without_an_id_is_still_located(tmp_path: Path) -> None:
    data = copy.deepcopy(OFFERS)
    del data["offers"][1]["id"]
    write(tmp_path, offers=data)

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == "offer without id (offers.yaml entry 2)"
    assert problem.message == "id: Field required"


def test_invalid_offer_entry_does_not_cascade_into_policy_references(tmp_path: Path) -> None:
    data = offers_with(prior=2)
    write(tmp_path, offers=data, policies=policy_with(offers=["card_gold"]))

    problem = only(validate_catalogue(tmp_path))

    assert problem.message.startswith("prior: ")


# --- contact policies ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"count": ["presented", "shown"]}, "count.1: Input should be"),
        ({"count": ["not_displayed"]}, "not_displayed cannot be counted"),
        (
            {"window": {"days": 7, "hours": 3}},
            "give exactly one of days, hours or calendar (got days, hours)",
        ),
        ({"window": {"calendar": "fortnight"}}, "window.calendar: Input should be 'day', 'week' or 'month'"),
        ({"level": "group", "suppress": "offer"}, "suppress 'offer' is narrower than level 'group'"),
        ({"threshold": 0}, "threshold: Input should be greater than or equal to 1"),
    ],
)
def test_policy_schema_errors(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    write(tmp_path, policies=policy_with(**changes))

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "policies.yaml")
    assert problem.location == "policy cap (policies.yaml entry 1)"
    assert expected in problem.message


@pytest.mark.parametrize(
    ("changes", "where", "expected"),
    [
        ({"channels": ["web", "fax"]}, "channels", "channel 'fax' is not one of the catalogue's channels"),
        ({"offers": ["card_gld"]}, "offers", "unknown offer 'card_gld' (did you mean 'card_gold'?)"),
        ({"groups": ["card"]}, "groups", "unknown group 'card' (did you mean 'cards'?)"),
        ({"segment": "segment == 'mass' and tenure > 3"}, "segment", "tenure"),
    ],
)
def test_policy_reference_errors(tmp_path: Path, changes: dict[str, Any], where: str, expected: str) -> None:
    write(tmp_path, policies=policy_with(**changes))

    problem = only(validate_catalogue(tmp_path))

    assert problem.location == f"policy cap (policies.yaml entry 1): {where}"
    assert expected in problem.message


def test_policies_file_is_optional(tmp_path: Path) -> None:
    assert load_catalogue(write(tmp_path, policies=None)).policies == ()


# --- catalogue.yaml and features.yaml -----------------------------------------------------------------
def test_catalogue_settings_errors(tmp_path: Path) -> None:
    catalogue = copy.deepcopy(CATALOGUE) | {
        "timezone": "Europe/Amsterdm",
        "arbitration": {"context_weights": {"complaint": {"crads": 0.2, "*": 1}}},
    }
    write(tmp_path, catalogue=catalogue)

    problems = validate_catalogue(tmp_path)

    assert [(p.location, p.message) for p in problems] == [
        ("timezone", "unknown time zone 'Europe/Amsterdm' (use an IANA name such as Europe/Amsterdam)"),
        ("arbitration.context_weights.complaint", "unknown group 'crads' (did you mean 'cards'?)"),
    ]
    assert {p.file for p in problems} == {str(tmp_path / "catalogue.yaml")}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"name": "tier", "type": "category", "categories": ["a", "b"], "default": "c"},
            "not among the categories",
        ),
        ({"name": "tier", "type": "category"}, "needs its categories"),
        ({"name": "score", "type": "number", "min": 10, "max": 1}, "min 10 is greater than max 1"),
        (
            {"name": "score", "type": "number", "min": 0, "max": 1, "default": 5},
            "default 5 is outside [0, 1]",
        ),
        ({"name": "flag", "type": "bool", "default": "yes"}, "is not true or false"),
        ({"name": "channel", "type": "category", "categories": ["x"]}, "'channel' is reserved"),
        ({"name": "score", "type": "text"}, "type: Input should be 'number', 'bool' or 'category'"),
    ],
)
def test_feature_schema_errors(tmp_path: Path, entry: dict[str, Any], expected: str) -> None:
    write(tmp_path, features={"features": [*FEATURES["features"], entry]})

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "features.yaml")
    assert problem.location == f"feature {entry['name']} (features.yaml entry 4)"
    assert expected in problem.message


def test_a_broken_feature_entry_does_not_make_its_rules_unknown(tmp_path: Path) -> None:
    features = copy.deepcopy(FEATURES)
    features["features"][0]["max"] = 10  # age: default 40 now outside [16, 10]
    write(tmp_path, features=features)

    problem = only(validate_catalogue(tmp_path))  # not also "unknown feature 'age'" in the cards rule

    assert problem.location == "feature age (features.yaml entry 1)"


# --- files -------------------------------------------------------------------------------------------
def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, policies="policies:\n  - id: cap\n    count: [presented\n")

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "policies.yaml")
    assert problem.location.startswith("line ")
    assert problem.message.startswith("invalid YAML: ")


def test_duplicate_yaml_key_is_an_error_not_a_silently_dropped_rule(tmp_path: Path) -> None:
    text = """offers:
  - id: card_gold
    name: Gold card
    group: cards
    product: gold
    channels: {web: {title: Go gold}}
    applicability:
      no_card: not has_credit_card
      no_card: age > 1
"""
    write(tmp_path, offers=text)

    problem = only(validate_catalogue(tmp_path))

    assert problem.message == "invalid YAML: duplicate key 'no_card'"
    assert problem.location == "line 9 column 7"


def test_unreadable_offers_file_does_not_cascade(tmp_path: Path) -> None:
    write(tmp_path, offers="offers: [", policies=policy_with(offers=["card_gold"]))

    problem = only(validate_catalogue(tmp_path))

    assert problem.file == str(tmp_path / "offers.yaml")


def test_missing_files_and_directory(tmp_path: Path) -> None:
    write(tmp_path, offers=None, features=None)

    problems = validate_catalogue(tmp_path)

    assert sorted(str(p) for p in problems) == [
        f"{tmp_path / 'features.yaml'}: file is missing",
        f"{tmp_path / 'offers.yaml'}: no offers*.yaml file found",
    ]
    assert [str(p) for p in validate_catalogue(tmp_path / "nowhere")] == [
        f"{tmp_path / 'nowhere'}: catalogue directory not found"
    ]


# --- values that load --------------------------------------------------------------------------------
def test_dates_are_read_in_the_catalogue_time_zone(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(start="2026-07-01", end="2026-12-01T09:30:00"))
    offer = load_catalogue(tmp_path).offer("card_gold")

    # Amsterdam is UTC+2 in summer and UTC+1 in winter
    assert offer.start == datetime(2026, 6, 30, 22, tzinfo=UTC).timestamp()
    assert offer.end == datetime(2026, 12, 1, 8, 30, tzinfo=UTC).timestamp()
    assert offer.is_active(offer.start) and not offer.is_active(offer.end)


def test_a_datetime_with_an_offset_keeps_it(tmp_path: Path) -> None:
    write(tmp_path, offers=offers_with(start="2026-07-01T12:00:00+00:00"))

    assert (
        load_catalogue(tmp_path).offer("card_gold").start == datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp()
    )


def test_offer_files_are_read_in_name_order(tmp_path: Path) -> None:
    extra = {"offers": [copy.deepcopy(OFFERS["offers"][1]) | {"id": "app_two"}]}
    write(tmp_path, offers_a=extra)

    assert [o.id for o in load_catalogue(tmp_path).offers] == ["card_gold", "app", "app_two"]
