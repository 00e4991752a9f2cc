"""The per-stage timers and the memoised metric children of service/metrics.py."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Children, Metrics, StageClock, current_clock, lap


def detail(metrics: Metrics, family: str = "nbo_decision_stage_detail_seconds") -> dict[str, tuple[float, float]]:
    out: dict[str, list[float]] = {}
    for f in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in f.samples if f.name == family else ():
            acc = out.setdefault(s.labels["stage"], [0.0, 0.0])
            acc[0 if s.name.endswith("_sum") else 1] += s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def test_a_lap_without_a_running_clock_does_nothing() -> None:
    metrics = Metrics()
    lap("load")
    assert detail(metrics) == {}


def test_laps_add_each_stage_of_each_request_and_export_sum_and_count() -> None:
    metrics = Metrics()
    for _ in range(3):
        token = current_clock.set(StageClock(metrics.stage_times))
        lap("load")
        sum(range(10_000))
        lap("rules")
        current_clock.reset(token)
    stages = detail(metrics)
    assert set(stages) == {"load", "rules"}
    assert stages["rules"][1] == 3 and stages["rules"][0] > 0
    assert "nbo_decision_stage_detail_cpu_seconds" not in generate_latest(metrics.registry).decode()


def test_cpu_per_stage_is_exported_only_when_asked() -> None:
    metrics = Metrics(stage_cpu=True)
    token = current_clock.set(StageClock(metrics.stage_times))
    sum(range(200_000))
    lap("scoring")
    current_clock.reset(token)
    seconds, count = detail(metrics, "nbo_decision_stage_detail_cpu_seconds")["scoring"]
    assert count == 1 and seconds > 0


def test_children_are_memoised_and_count_in_the_registry() -> None:
    metrics = Metrics()
    presented = Children(metrics.presented)
    assert presented("card_gold", "web") is presented("card_gold", "web")
    presented("card_gold", "web").inc()
    presented("card_gold", "web").inc()
    assert metrics.presented.labels("card_gold", "web")._value.get() == 2
