"""The demo catalogue as the loader compiles it, and what its rules say about typical customers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from decisioning.catalogue import (
    BudgetPeriod,
    CalendarUnit,
    Catalogue,
    ControlMode,
    ExplorationKind,
    Level,
    RuleClass,
    WindowKind,
)
from decisioning.rules import RuleEnv
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, HOUR, ContactEvent, Context, FeatureValue, Outcome
from policies import DEMO_DIRECTORY, catalogue_files, catalogue_version, load_catalogue, validate_catalogue

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp()
SALES_GROUPS = {"cards", "loans", "mortgages", "savings", "investments", "insurance"}
TYPICAL = {
    "age": 38, "income_monthly": 3200, "balance_current": 4200, "balance_savings": 12000, "tenure_months": 72,
    "credit_score": 710, "card_spend_30d": 900, "app_logins_30d": 14, "num_products": 3,
    "has_savings_account": True, "marketing_consent": True, "segment": "mass", "has_children": True,
    "digital_active": True,
}  # fmt: skip


@pytest.fixture(scope="module")
def demo() -> Catalogue:
    return load_catalogue(DEMO_DIRECTORY)


def features(demo: Catalogue, **changes: FeatureValue) -> dict[str, FeatureValue]:
    """Every declared feature at its default, then the typical customer, then `changes`."""
    return {f.name: f.default for f in demo.features} | TYPICAL | changes


def eligible(
    demo: Catalogue,
    values: Mapping[str, FeatureValue],
    channel: str,
    *,
    intent: str | None = None,
    events: Iterable[ContactEvent] = (),
) -> set[str]:
    """Offers whose every rule holds (group rules, then the offer's) and that are active in the channel."""
    view = HistoryView(HistorySummary().with_events(events), NOW, demo.response_window_seconds)
    env = RuleEnv(values, Context(channel=channel, now=NOW, intent=intent), view)
    return {
        o.id
        for o in demo.offers
        if channel in o.treatments and o.is_active(NOW) and all(r.compiled.evaluate(env) for r in o.rules)
    }


def groups_of(demo: Catalogue, offer_ids: Iterable[str]) -> set[str]:
    return {demo.offer(i).group for i in offer_ids}


def event(
    days_ago: float, offer_id: str, outcome: Outcome, demo: Catalogue, channel: str = "web"
) -> ContactEvent:
    return ContactEvent(NOW - days_ago * DAY, offer_id, demo.offer(offer_id).group, channel, outcome, "d-1")


# --- what the loader builds ----------------------------------------------------------------------------
def test_demo_catalogue_validates_and_has_the_bank_shape(demo: Catalogue) -> None:
    assert validate_catalogue(DEMO_DIRECTORY) == []
    assert demo.channels == ("web", "mobile", "call_centre", "branch", "email", "sms")
    assert set(demo.groups) == SALES_GROUPS | {"retention", "service"}
    assert len(demo.offers) >= 30
    assert {o.group for o in demo.offers} == set(demo.groups)
    assert len(demo.policies) >= 10


def test_version_is_a_stable_content_hash(demo: Catalogue, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(DEMO_DIRECTORY, tmp_path / "demo"))
    assert demo.version == catalogue_version(DEMO_DIRECTORY) == catalogue_version(copy)
    assert re.fullmatch(r"[0-9a-f]{12}", demo.version), demo.version  # 12 lowercase hex digits, nothing else

    (copy / "README.txt").write_text("not part of the catalogue\n")
    assert catalogue_version(copy) == demo.version

    # An event rule changes what decisions read: it changes the version too.
    events = copy / "events.yaml"
    events.write_text(events.read_text().replace("when: amount >= 5000", "when: amount >= 4000"))
    assert catalogue_version(copy) != demo.version
    assert load_catalogue(copy).version == catalogue_version(copy)
    events.write_text((DEMO_DIRECTORY / "events.yaml").read_text())
    assert catalogue_version(copy) == demo.version

    offers = copy / "offers.yaml"
    offers.write_text(offers.read_text().replace("weight: 1.1", "weight: 1.2", 1))
    assert catalogue_version(copy) != demo.version
    assert load_catalogue(copy).version == catalogue_version(copy)


def test_catalogue_files_are_the_yaml_the_loader_reads() -> None:
    names = [p.name for p in catalogue_files(DEMO_DIRECTORY)]
    assert names == [
        "catalogue.yaml",
        "events.yaml",
        "features.yaml",
        "offers.yaml",
        "offers_care.yaml",
        "policies.yaml",
        "triggers.yaml",
    ]


def test_treatments_cover_the_channels_with_scripts_for_agents(demo: Catalogue) -> None:
    used = {channel for o in demo.offers for channel in o.treatments}
    assert used == set(demo.channels)
    for offer in demo.offers:
        assert len(offer.treatments) >= 3, offer.id
        for channel, treatment in offer.treatments.items():
            assert treatment.channel == channel and treatment.title
            if channel in ("call_centre", "branch"):
                assert treatment.script, f"{offer.id}: an agent needs a script"
            if channel in ("web", "mobile", "email"):
                assert treatment.url, f"{offer.id}: {channel} needs a link"


def test_rules_are_group_first_then_offer_in_class_order(demo: Catalogue) -> None:
    rules = [(r.owner, r.rule_class.value, r.name) for r in demo.offer("card_gold").rules]

    assert rules == [
        ("group:cards", "eligibility", "adult"),
        ("group:cards", "eligibility", "resident"),
        ("group:cards", "eligibility", "consent"),
        ("group:cards", "suitability", "not_in_arrears"),
        ("group:cards", "suitability", "no_sales_in_complaint"),
        ("offer:card_gold", "eligibility", "income"),
        ("offer:card_gold", "eligibility", "credit"),
        ("offer:card_gold", "applicability", "no_gold_yet"),
        ("offer:card_gold", "suitability", "spends_on_card"),
    ]
    assert demo.groups["cards"].rules == demo.offer("card_gold").rules[:5]
    assert demo.offer("card_gold").rules[5].text == "income_monthly >= 3500"


def test_every_rule_class_is_used_on_offers(demo: Catalogue) -> None:
    own = [r for o in demo.offers for r in o.rules if r.owner == f"offer:{o.id}"]
    assert {r.rule_class for r in own} == set(RuleClass)


def test_offer_fields(demo: Catalogue) -> None:
    advice = demo.offer("mortgage_advice_call")
    assert advice.lever == pytest.approx(1.3 * 1.2)  # offer weight x group lever
    assert (advice.budget.limit, advice.budget.period) == (500, BudgetPeriod.DAY)
    assert demo.offer("invest_advisor_meeting").budget.period is BudgetPeriod.CAMPAIGN
    assert demo.offer("mortgage_first_home").response_window_days == 14
    assert demo.response_window_seconds("card_cashback") == 7 * DAY  # the catalogue default
    assert not any(o.marketing for o in demo.offers if o.group == "service")
    assert all(o.marketing for o in demo.offers if o.group != "service")
    assert demo.offer("card_cashback").value.kind == "number"


def test_campaign_dates_are_amsterdam_midnight(demo: Catalogue) -> None:
    deposit = demo.offer("savings_fixed_deposit")
    assert deposit.start == datetime(2026, 8, 31, 22, tzinfo=UTC).timestamp()  # CEST, UTC+2
    assert deposit.end == datetime(2027, 2, 28, 23, tzinfo=UTC).timestamp()  # CET, UTC+1
    assert deposit.is_active(NOW)


def test_contact_policies_of_every_kind(demo: Catalogue) -> None:
    p = {policy.id: policy for policy in demo.policies}

    cap = p["offer_cap_7d"]
    assert (cap.level, cap.threshold, cap.window.seconds, cap.suppress_days) == (
        Level.OFFER,
        3,
        7 * DAY,
        None,
    )
    assert cap.outcomes == {Outcome.PRESENTED, Outcome.SENT} and cap.channels is None
    assert (p["decline_cool_off"].threshold, p["decline_cool_off"].suppress_days) == (1, 30)
    group = p["group_decline_cool_off"]
    assert (group.level, group.suppress, group.threshold, group.window.seconds, group.suppress_days) == (
        Level.GROUP, Level.GROUP, 3, 90 * DAY, 60,
    )  # fmt: skip
    assert (
        p["outbound_weekly_cap"].channels == {"email", "sms"} and p["outbound_weekly_cap"].level is Level.ALL
    )
    assert p["sms_daily_cap"].window.seconds == 24 * HOUR
    daily = p["group_daily_cap"].window
    assert (daily.kind, daily.unit) == (WindowKind.CALENDAR, CalendarUnit.DAY)
    assert p["young_credit_cap"].segment.text == "age < 21 or segment == 'student'"
    assert p["young_credit_cap"].groups == {"cards", "loans"}
    assert (
        p["accepted_cool_off"].outcomes == {Outcome.ACCEPTED} and p["accepted_cool_off"].suppress_days == 180
    )
    assert p["mortgage_lead_weekly"].offers == {"mortgage_advice_call"}
    # offer_cap_7d covers marketing offers only; service messages get their own cap of 3
    assert (p["service_offer_cap"].groups, p["service_offer_cap"].threshold) == ({"service"}, 3)


def test_arbitration_settings(demo: Catalogue) -> None:
    s = demo.settings
    assert s.timezone == "Europe/Amsterdam" and s.max_per_group == 1
    assert s.context_weights["complaint"]["retention"] == 3 and s.context_weights["complaint"]["*"] == 0.2
    assert s.context_weights["wants_to_close"]["retention"] == 5
    assert (s.control_share, s.control_period, s.control_mode) == (0.05, "quarter", ControlMode.RANDOM)
    assert (s.exploration, s.epsilon) == (ExplorationKind.EPSILON, 0.05)
    assert s.default_response_window_days == 7


def test_features_are_the_declared_schema(demo: Catalogue) -> None:
    declared = yaml.safe_load((DEMO_DIRECTORY / "features.yaml").read_text())["features"]
    assert [f.name for f in demo.features] == [d["name"] for d in declared]
    segment = next(f for f in demo.features if f.name == "segment")
    assert segment.default == "mass" and "student" in segment.categories


def test_every_feature_a_demo_rule_reads_is_declared(demo: Catalogue) -> None:
    rules = [r.compiled for o in demo.offers for r in o.rules] + [o.value for o in demo.offers]
    rules += [p.segment for p in demo.policies if p.segment is not None]
    read = {name for rule in rules for name in rule.names}

    assert read <= {f.name for f in demo.features}
    assert {"age", "churn_signal_at", "mortgage_calc_visits_30d", "card_declined_last_at"} <= read
    assert {"transfer_out_competitor_30d", "large_withdrawals_7d", "app_pos_payments_30d"} <= read


def test_the_loader_refuses_an_undeclared_feature_in_a_demo_rule(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(DEMO_DIRECTORY, tmp_path / "demo"))
    offers = copy / "offers_care.yaml"
    offers.write_text(offers.read_text().replace("app_pos_payments_30d >= 5", "app_shop_payments >= 5"))

    [problem] = validate_catalogue(copy)

    assert problem.location == (
        "offer retention_app_reward (offers_care.yaml entry 4): applicability rule 'pays_with_app'"
    )
    assert "app_shop_payments" in problem.message


# --- what the rules say about customers ---------------------------------------------------------------
def test_a_typical_customer_gets_several_offers_on_web_and_call_centre(demo: Catalogue) -> None:
    web = eligible(demo, features(demo), "web")
    phone = eligible(demo, features(demo), "call_centre")

    assert len(web) >= 8 and len(groups_of(demo, web)) >= 5, sorted(web)
    assert len(phone) >= 8 and len(groups_of(demo, phone)) >= 5, sorted(phone)
    assert {"card_cashback", "loan_personal", "savings_high_yield"} <= web
    assert not {"card_gold", "mortgage_refinance", "service_arrears_help"} & web


def test_no_sales_pitch_in_a_complaint_call(demo: Catalogue) -> None:
    offers = eligible(demo, features(demo), "call_centre", intent="complaint")

    assert offers and not groups_of(demo, offers) & SALES_GROUPS


def test_without_consent_only_service_and_inbound_retention(demo: Catalogue) -> None:
    values = features(demo, marketing_consent=False, churn_signal_at=NOW - 2 * DAY)

    assert groups_of(demo, eligible(demo, values, "web")) == {"retention", "service"}
    assert groups_of(demo, eligible(demo, values, "email")) == {"service"}


def test_customer_in_arrears_gets_help_not_credit(demo: Catalogue) -> None:
    offers = eligible(demo, features(demo, in_arrears=True), "web")

    assert "service_arrears_help" in offers
    assert not groups_of(demo, offers) & {"cards", "loans", "mortgages", "investments"}


def test_churn_signal_brings_retention_offers(demo: Catalogue) -> None:
    assert not groups_of(demo, eligible(demo, features(demo), "web")) & {"retention"}

    signalled = eligible(demo, features(demo, churn_signal_at=NOW - 2 * DAY), "web")
    stale = eligible(demo, features(demo, churn_signal_at=NOW - 20 * DAY), "web")
    closing = eligible(demo, features(demo), "call_centre", intent="wants_to_close")

    assert {"retention_fee_waiver", "retention_loyalty_bonus"} <= signalled
    assert "retention_fee_waiver" not in stale
    assert "retention_fee_waiver" in closing


def test_real_time_triggers(demo: Catalogue) -> None:
    declined = features(demo, card_declined_last_at=NOW - 1 * DAY, has_credit_card=True, card_spend_30d=2000)
    browsing = features(demo, mortgage_calc_visits_30d=3, mortgage_calc_last_at=NOW - 1 * DAY)

    assert "service_card_declined_help" in eligible(demo, declined, "mobile")
    assert "card_limit_increase" not in eligible(demo, declined, "web")
    assert "card_limit_increase" in eligible(demo, declined | {"card_declined_last_at": None}, "web")
    assert "mortgage_advice_call" in eligible(demo, browsing, "call_centre")
    assert "mortgage_advice_call" not in eligible(demo, browsing | {"mortgage_calc_visits_30d": 1}, "call_centre")


def test_windowed_churn_signals(demo: Catalogue) -> None:
    # Repeated transfers to competitor banks this month keep the fee waiver on after the 14-day signal.
    stale = features(demo, churn_signal_at=NOW - 20 * DAY)
    assert "retention_fee_waiver" in eligible(demo, stale | {"transfer_out_competitor_30d": 2}, "web")
    assert "retention_fee_waiver" not in eligible(demo, stale | {"transfer_out_competitor_30d": 1}, "web")
    # An affluent customer's single large withdrawal is routine; two in a week call for their banker.
    affluent = features(demo, segment="affluent", churn_signal_at=NOW - DAY, large_withdrawal_last_at=NOW - DAY)
    banker = "retention_personal_banker_call"
    assert banker not in eligible(demo, affluent | {"large_withdrawals_7d": 1}, "web")
    assert banker in eligible(demo, affluent | {"large_withdrawals_7d": 2}, "web")
    assert banker in eligible(demo, affluent | {"transfer_out_competitor_30d": 1}, "web")


def test_the_app_reward_counts_app_payments_of_the_last_30_days(demo: Catalogue) -> None:
    assert "retention_app_reward" in eligible(demo, features(demo, app_pos_payments_30d=5), "mobile")
    assert "retention_app_reward" not in eligible(demo, features(demo, app_pos_payments_30d=4), "mobile")


def test_thank_you_and_next_offer_after_a_mortgage_is_accepted(demo: Catalogue) -> None:
    values = features(demo, has_mortgage=True)
    recent = eligible(demo, values, "web", events=[event(10, "mortgage_first_home", Outcome.ACCEPTED, demo)])
    later = eligible(demo, values, "web", events=[event(40, "mortgage_first_home", Outcome.ACCEPTED, demo)])

    assert {"service_mortgage_welcome", "insurance_home_new_owner"} <= recent
    assert "service_mortgage_welcome" not in later and "insurance_home_new_owner" in later
    assert "insurance_home_new_owner" not in eligible(demo, values, "web")


@pytest.mark.parametrize(
    ("history", "reminded"),
    [
        ([(8, Outcome.PRESENTED)], True),
        ([(3, Outcome.PRESENTED)], False),  # too soon
        ([(8, Outcome.PRESENTED), (7, Outcome.DECLINED)], False),  # answered
        ([], False),  # never shown
    ],
)
def test_gold_card_reminder_after_a_week_without_answer(
    demo: Catalogue, history: list[tuple[float, Outcome]], reminded: bool
) -> None:
    values = features(demo, income_monthly=4500, has_credit_card=True)
    events = [event(days, "card_gold", outcome, demo) for days, outcome in history]

    assert ("card_gold_reminder" in eligible(demo, values, "web", events=events)) is reminded
