"""The whole decision in the pure core: stages, explanations, journeys, consistency, logging."""

from __future__ import annotations

from decisioning.catalogue import ArbitrationSettings, Budget, ConsistencyMode, FeatureSpec, FeatureType, RuleClass
from decisioning.engine import DecisionRequest, decide
from decisioning.explanation import Stage
from decisioning.ports import CustomerSnapshot
from decisioning.quality import validate_features
from decisioning.summary import HistorySummary
from decisioning.types import DAY, CustomerFeatures, Outcome
from tests.unit.factories import NOW, FixedScorer, catalogue, context, customer, event, offer, policy, rule

ADULT = rule("adult", "age >= 18", RuleClass.ELIGIBILITY, "group:cards")
NO_CARD = rule("no_card_yet", "not has_credit_card", RuleClass.APPLICABILITY, "offer:card_gold")
NOT_IN_ARREARS = rule("not_in_arrears", "not in_arrears", RuleClass.SUITABILITY, "offer:card_gold")
NO_COMPLAINT = rule("no_sales_in_complaint", "intent != 'complaint'", RuleClass.SUITABILITY, "group:cards")


def run(
    cat,
    features=None,
    *,
    summary=None,
    channel="web",
    n=1,
    explain=True,
    scorer=None,
    exhausted=frozenset(),
    cust=None,
    **ctx,
):
    request = DecisionRequest(
        "d-test", cust or customer("c-1", **(features or {})), context(channel, **ctx), n, explain
    )
    return decide(cat, request, summary or HistorySummary(), scorer or FixedScorer(), exhausted_budgets=exhausted)


def explained(decision) -> dict:
    return {e.offer_id: e for e in decision.explanations}


def test_best_offer_wins_and_every_candidate_is_explained():
    cat = catalogue([offer("card_gold", value=200), offer("loan", "loans", value=500)])
    decision = run(cat, scorer=FixedScorer({"card_gold": 0.3, "loan": 0.05}))
    assert [p.offer.id for p in decision.offers] == ["card_gold"]
    first = decision.offers[0]
    assert (first.rank, first.propensity, first.value, first.priority) == (1, 0.3, 200.0, 0.3 * 200)
    why = explained(decision)
    assert why["card_gold"].stage is Stage.SELECTED and "priority 60" in why["card_gold"].reason
    assert why["loan"].stage is Stage.ARBITRATION and why["loan"].scores["priority"] == 25.0


def test_rules_of_three_classes_drop_offers_and_name_class_rule_and_values():
    gold = offer("card_gold", rules=[ADULT, NO_CARD, NOT_IN_ARREARS])
    cat = catalogue([gold])
    young = explained(run(cat, {"age": 17, "has_credit_card": False, "in_arrears": False}))["card_gold"]
    assert young.stage is Stage.ELIGIBILITY and young.rule.name == "adult" and young.rule.owner == "group:cards"
    assert young.rule.values == {"age": 17}
    holder = explained(run(cat, {"age": 30, "has_credit_card": True, "in_arrears": False}))["card_gold"]
    assert holder.stage is Stage.APPLICABILITY and "not has_credit_card" in holder.reason
    arrears = explained(run(cat, {"age": 30, "has_credit_card": False, "in_arrears": True}))["card_gold"]
    assert arrears.stage is Stage.SUITABILITY


def test_rule_classes_are_checked_in_order_whatever_the_declaration_order():
    gold = offer("card_gold", rules=[NOT_IN_ARREARS, NO_CARD, ADULT])
    why = explained(run(catalogue([gold]), {"age": 17, "has_credit_card": True, "in_arrears": True}))
    assert why["card_gold"].stage is Stage.ELIGIBILITY


def test_context_rule_keeps_sales_out_of_a_complaint_call():
    cat = catalogue([offer("card_gold", rules=[NO_COMPLAINT]), offer("apology", "service", marketing=False)])
    decision = run(cat, channel="call_centre", intent="complaint")
    assert [p.offer.id for p in decision.offers] == ["apology"]
    assert explained(decision)["card_gold"].stage is Stage.SUITABILITY


def test_inactive_and_channel_stages():
    cat = catalogue(
        [
            offer("old", end=NOW - DAY),
            offer("future", start=NOW + DAY),
            offer("branch_only", channels=["branch"]),
        ]
    )
    why = explained(run(cat))
    assert why["old"].stage is why["future"].stage is Stage.INACTIVE
    assert why["branch_only"].stage is Stage.CHANNEL and "'web'" in why["branch_only"].reason


def test_contact_policy_stage_names_the_rule_its_count_and_window():
    cat = catalogue([offer("card_gold")], [policy("offer_cap", ["presented"], days=7, threshold=2)])
    summary = HistorySummary((event(3, "card_gold"), event(1, "card_gold", channel="mobile")))
    decision = run(cat, summary=summary)
    assert decision.offers == ()
    why = explained(decision)["card_gold"]
    assert why.stage is Stage.CONTACT_POLICY and why.policy.count == 2 and why.policy.window == "last 7 days"
    assert [s.policy_id for s in decision.suppressions] == ["offer_cap"]


def test_exhausted_budget_drops_the_offer_and_the_next_best_takes_its_place():
    cat = catalogue([offer("mortgage_call", "mortgages", budget=Budget(500)), offer("loan", "loans")])
    decision = run(cat, scorer=FixedScorer({"mortgage_call": 0.9}), exhausted=frozenset({"mortgage_call"}))
    assert [p.offer.id for p in decision.offers] == ["loan"]
    assert "budget of 500 per day" in explained(decision)["mortgage_call"].reason


def test_unknown_customer_is_decided_on_defaults_and_says_so():
    cat = catalogue([offer("welcome")])
    stranger = CustomerFeatures("c-new", {"age": 40.0}, known=False, defaulted=())
    decision = run(cat, cust=stranger)
    assert [p.offer.id for p in decision.offers] == ["welcome"]
    assert any("unknown customer" in n for n in decision.notes)


def test_an_unknown_customers_rule_failure_names_the_defaulted_values():
    # The whole path from the cache's "never seen" snapshot: every value is a default, and says so.
    specs = (FeatureSpec("age", FeatureType.NUMBER, 16, minimum=16, maximum=110),)
    stranger = validate_features(specs, "c-new", CustomerSnapshot("c-new", None), NOW)
    decision = run(catalogue([offer("card_gold", rules=[ADULT])]), cust=stranger)
    why = explained(decision)["card_gold"]
    assert why.rule.defaulted == ("age",) and "default values for missing data: age" in why.reason
    assert any("unknown customer" in n for n in decision.notes)


def test_a_rule_read_on_defaulted_data_says_so():
    cat = catalogue([offer("card_gold", rules=[ADULT])])
    partial = CustomerFeatures("c-2", {"age": 16.0}, defaulted=("age",))
    why = explained(run(cat, cust=partial))["card_gold"]
    assert why.rule.defaulted == ("age",) and "default values for missing data: age" in why.reason


def test_context_weight_by_intent():
    settings = ArbitrationSettings(context_weights={"wants_to_close": {"retention": 5.0, "*": 0.5}})
    cat = catalogue([offer("card_gold"), offer("fee_waiver", "retention")], settings=settings)
    scorer = FixedScorer({"card_gold": 0.3, "fee_waiver": 0.1})
    assert run(cat, scorer=scorer).offers[0].offer.id == "card_gold"
    leaving = run(cat, scorer=scorer, intent="wants_to_close")
    assert leaving.offers[0].offer.id == "fee_waiver" and leaving.offers[0].context_weight == 5.0


def test_call_centre_sees_what_the_web_showed_yesterday():
    pin = ArbitrationSettings(consistency=ConsistencyMode.PIN, consistency_days=2)
    cat = catalogue([offer("card_gold"), offer("loan", "loans")], settings=pin)
    shown = HistorySummary((event(1, "loan", group="loans", channel="web", decision_id="d-web"),))
    scorer = FixedScorer({"card_gold": 0.5, "loan": 0.1})
    decision = run(cat, summary=shown, channel="call_centre", scorer=scorer)
    assert decision.offers[0].offer.id == "loan"
    answered = HistorySummary((*shown.events, event(0.5, "loan", "declined", group="loans", decision_id="d-web")))
    assert run(cat, summary=answered, channel="call_centre", scorer=scorer).offers[0].offer.id == "card_gold"


def test_consistency_boost_multiplies_priority():
    boost = ArbitrationSettings(consistency=ConsistencyMode.BOOST, consistency_boost=1.5)
    cat = catalogue([offer("loan", "loans")], settings=boost)
    shown = HistorySummary((event(1, "loan", group="loans"),))
    assert run(cat, summary=shown).offers[0].boost == 1.5


def test_decision_record_carries_everything_the_history_needs():
    cat = catalogue([offer("card_gold"), offer("loan", "loans")])
    decision = run(cat, n=2, placement="home_hero", scorer=FixedScorer({"card_gold": 0.2, "loan": 0.1}))
    record = decision.to_record(request_id="r-1")
    assert [c.offer_id for c in record.contacts] == ["card_gold", "loan"]
    first = record.contacts[0]
    assert (first.contact_id, first.outcome, first.placement, first.rank) == (
        "d-test",
        Outcome.PRESENTED,
        "home_hero",
        1,
    )
    assert first.selection_probability == 1.0 and first.model_version == "fixed-1"
    assert record.catalogue_version == "test" and len(record.candidates) == 2


def test_same_inputs_same_decision():
    cat = catalogue([offer(f"o{i}", f"g{i % 3}") for i in range(20)])
    a, b = run(cat, n=3), run(cat, n=3)
    assert [p.offer.id for p in a.offers] == [p.offer.id for p in b.offers]


# --- journeys (issue: follow-up journeys must be expressible) --------------------------------------------

REMIND = rule(
    "after_a_week_without_answer",
    "count(offer='card_gold', outcome='presented') >= 1 and "
    "days_since(offer='card_gold', outcome='presented') >= 7 and "
    "count(offer='card_gold', outcome=['clicked', 'accepted', 'declined']) == 0",
    RuleClass.APPLICABILITY,
)
THANKS = rule(
    "accepted_mortgage_recently",
    "days_since(offer='mortgage', outcome='accepted') < 30",
    RuleClass.APPLICABILITY,
)
AFTER_A = rule(
    "after_cashback_accepted",
    "count(offer='card_cashback', outcome='accepted') >= 1",
    RuleClass.APPLICABILITY,
)


def offered(cat, summary) -> bool:
    return bool(run(cat, summary=summary, explain=False).offers)


def test_journey_remind_after_seven_days_without_response():
    cat = catalogue([offer("card_gold_reminder", rules=[REMIND])])
    assert not offered(cat, HistorySummary())
    assert not offered(cat, HistorySummary((event(3, "card_gold"),)))
    assert offered(cat, HistorySummary((event(8, "card_gold"),)))
    answered = HistorySummary((event(8, "card_gold"), event(6, "card_gold", "clicked")))
    assert not offered(cat, answered)


def test_journey_thank_after_acceptance():
    cat = catalogue([offer("thanks_mortgage", "service", rules=[THANKS], marketing=False)])
    assert not offered(cat, HistorySummary((event(5, "mortgage", "presented", group="mortgages"),)))
    assert offered(cat, HistorySummary((event(5, "mortgage", "accepted", group="mortgages"),)))
    assert not offered(cat, HistorySummary((event(40, "mortgage", "accepted", group="mortgages"),)))


def test_journey_offer_b_only_after_a_was_accepted():
    cat = catalogue([offer("card_upgrade", rules=[AFTER_A])])
    assert not offered(cat, HistorySummary((event(5, "card_cashback", "declined"),)))
    assert offered(cat, HistorySummary((event(5, "card_cashback", "accepted"),)))


def test_the_record_keeps_the_validated_features_in_schema_order_with_the_schema_version():
    import dataclasses

    from decisioning.catalogue import feature_schema_version

    specs = (
        FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("mass", "gold")),
        FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16, maximum=110),
        FeatureSpec("has_credit_card", FeatureType.BOOL, False),
    )
    cat = dataclasses.replace(catalogue([offer("welcome")]), features=specs)
    validated = validate_features(specs, "c-1", CustomerSnapshot("c-1", {"age": "33", "segment": "gold"}), NOW)
    record = run(cat, cust=validated).to_record()
    assert record.features == ("gold", 33.0, False)  # has_credit_card defaulted: the default was decided on
    assert record.feature_schema == feature_schema_version(specs) == cat.feature_schema


def test_the_feature_schema_version_changes_with_the_specs_but_not_their_descriptions():
    from decisioning.catalogue import feature_schema_version

    age = FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16)
    assert feature_schema_version((age,)) == feature_schema_version(
        (FeatureSpec(**{**_fields(age), "description": "x"}),)
    )
    assert feature_schema_version((age,)) != feature_schema_version((FeatureSpec(**{**_fields(age), "minimum": 18}),))
    assert feature_schema_version((age, ADULT_SPEC)) != feature_schema_version((ADULT_SPEC, age))


ADULT_SPEC = FeatureSpec("is_resident", FeatureType.BOOL, True)


def _fields(spec: FeatureSpec) -> dict:
    import dataclasses

    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
