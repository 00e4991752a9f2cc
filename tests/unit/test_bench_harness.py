"""The pure parts of `make bench`: the open-loop schedule, the latency maths, the mix, stage deltas, the
result JSON and the goal checks (the servers and load themselves are the benchmark, not a test)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from loadtests import mix, openloop, results, stages
from loadtests.results import BASELINE, EMBEDDED, SATURATION, STACK, Measurement


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    due = openloop.schedule(500, 2)
    assert len(due) == 1000
    assert due[0] == 0.0
    assert np.allclose(np.diff(due), 1 / 500)


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (10, 0), (-1, 5)])
def test_schedule_refuses_a_rate_or_duration_that_is_not_positive(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        openloop.schedule(rate, duration)


def test_latency_summary_interpolates_percentiles_in_milliseconds() -> None:
    summary = openloop.latency_summary([i / 1000 for i in range(1, 1001)])  # 1..1000 ms
    assert summary["p50_ms"] == pytest.approx(500.5)
    assert summary["p99_ms"] == pytest.approx(990.01)
    assert summary["p99.9_ms"] == pytest.approx(999.001)
    assert summary["max_ms"] == pytest.approx(1000.0)


def test_latency_summary_of_nothing_is_nan_not_an_error() -> None:
    assert all(math.isnan(v) for v in openloop.latency_summary([]).values())


def test_a_stalled_server_is_charged_on_every_request_due_meanwhile() -> None:
    """Coordinated omission: the client sends on time; a server that answers one connection at a time and
    stalls 50 ms on the first request delays every request due during the stall, and each one counts it."""
    stalls = [0.05]

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client closing its connection
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)
                await asyncio.sleep(stalls.pop() if stalls else 0)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async def scenario() -> openloop.Outcome:
        listener = await asyncio.start_server(server, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        request = openloop.Request("decision", openloop.encode("POST", "/x", b"{}", {}))
        async with listener:
            return await openloop.run("127.0.0.1", port, [request], rate=200, duration=0.1, connections=1)

    outcome = asyncio.run(scenario())
    assert len(outcome.latencies) == 20 and set(outcome.statuses) == {200}
    # One connection answers in due order. Requests due at 0, 5, ..., 45 ms waited behind the 50 ms stall:
    # each is charged what it waited since it fell due (a closed-loop client would charge only the first).
    assert outcome.latencies[0] >= 0.05
    assert all(outcome.latencies[i] >= 0.05 - 0.005 * i - 0.001 for i in range(9))


def test_read_response_reads_one_content_length_framed_answer() -> None:
    async def scenario() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 5\r\n\r\nabcdeHTTP/1.1")
        return await openloop.read_response(reader), await reader.read(8)

    assert asyncio.run(scenario()) == (422, b"HTTP/1.1")


def test_the_mix_is_seeded_and_has_its_shares() -> None:
    bodies = mix.bodies(4000, 1000, ["card_gold", "loan_small"])
    assert bodies == mix.bodies(4000, 1000, ["card_gold", "loan_small"])
    kinds = Counter(kind for kind, _ in bodies)
    assert kinds["decision"] / 4000 == pytest.approx(0.85, abs=0.03)
    assert kinds["response"] / 4000 == pytest.approx(0.10, abs=0.02)
    call_centre = [b for k, b in bodies if k == "decision" and b["channel"] == "call_centre"]
    assert call_centre and all(b["max_offers"] == 5 and b["explain"] for b in call_centre)


def test_wrk_file_and_requests_keep_the_decisions_only_for_a_scoring_only_server(tmp_path: Path) -> None:
    bodies = mix.bodies(200, 1000, ["card_gold"])
    lines = mix.write_wrk_file(tmp_path / "r.tsv", bodies, decisions_only=True).read_text().splitlines()
    decisions = [b for k, b in bodies if k == "decision"]
    assert len(lines) == len(decisions)
    path, body = lines[0].split("\t")
    assert path == "/v1/decisions" and orjson.loads(body) == decisions[0]
    assert all(r.kind == "decision" for r in mix.requests(bodies, {}, decisions_only=True))


def test_stage_totals_are_parsed_per_worker_and_subtracted_per_worker() -> None:
    text = (
        "# TYPE nbo_worker_pid gauge\nnbo_worker_pid 42.0\n"
        "# TYPE nbo_decision_stage_detail_seconds summary\n"
        'nbo_decision_stage_detail_seconds_sum{stage="load"} 1.0\n'
        'nbo_decision_stage_detail_seconds_count{stage="load"} 200.0\n'
        "# TYPE nbo_decision_stage_detail_cpu_seconds summary\n"
        'nbo_decision_stage_detail_cpu_seconds_sum{stage="load"} 0.5\n'
        'nbo_decision_stage_detail_cpu_seconds_count{stage="load"} 200.0\n'
    )
    pid, totals = stages.parse(text)
    assert pid == 42 and totals == {"load": (1.0, 200.0), "cpu:load": (0.5, 200.0)}
    before = {42: {"load": (1.0, 200.0)}, 7: {"load": (1.0, 100.0)}}
    after = {42: {"load": (2.0, 400.0)}, 7: {"load": (1.3, 200.0)}}
    assert stages.means_ms(before, after) == {"load": pytest.approx(1000 * 1.3 / 300)}


def measurement(server: str, phase: str, round_: int, requests: int, p99: float, cpu: float) -> Measurement:
    latency = {"p50_ms": p99 / 2, "p95_ms": p99 * 0.8, "p99_ms": p99, "p99.9_ms": p99 * 2, "max_ms": p99 * 3}
    return Measurement(round_, server, phase, requests, requests, 0, 10.0, latency, {"server": cpu})


def a_run() -> list[Measurement]:
    rows = []
    for r, scale in enumerate((1.0, 1.2, 0.8), start=1):
        rows += [measurement(BASELINE, SATURATION, r, int(10_000 * scale), 20, 20.0),
                 measurement(STACK, SATURATION, r, int(16_000 * scale), 10, 10.0),
                 measurement(EMBEDDED, SATURATION, r, int(17_000 * scale), 8, 9.0),
                 measurement(STACK, "open-500", r, 5000, 4.0 * scale, 2.0),
                 measurement(EMBEDDED, "open-300", r, 3000, 6.0 * scale, 1.0)]  # fmt: skip
    return rows


def test_medians_are_taken_over_rounds_per_server_and_phase() -> None:
    m = results.medians(a_run())
    assert m[(STACK, SATURATION)]["rps"] == pytest.approx(1600.0)
    assert m[(STACK, "open-500")]["p99_ms"] == pytest.approx(4.0)
    assert m[(STACK, SATURATION)]["cpu_ms_per_decision_server"] == pytest.approx(1000 * 10 / 16_000)


def test_goals_pass_and_fail_on_the_medians() -> None:
    checks = {g.name: g for g in results.goals(results.medians(a_run()), 4800, "open-300", "open-500")}
    assert checks["stack saturation / scoring-only saturation (req/s)"].measured == pytest.approx(1.6)
    assert checks["stack saturation / scoring-only saturation (req/s)"].passed
    assert checks["stack p99 at open-500 (ms)"].passed
    assert not checks["embedded p99 at open-300 (ms)"].passed  # 6 ms is not under 5
    assert checks["stack server CPU per decision at saturation (ms)"].passed  # 0.625 ms
    assert not checks["core decisions/s on one core (make bench-core)"].passed


def test_results_json_holds_rounds_medians_goals_and_meta(tmp_path: Path) -> None:
    rows = a_run()
    checks = results.goals(results.medians(rows), None, "open-300", "open-500")
    path = results.write(rows, checks, {"commit": "abc1234", "rounds": 3}, root=tmp_path)
    assert path.parent.name.endswith("-abc1234") and path.parent.parent == tmp_path
    document = orjson.loads(path.read_bytes())
    assert len(document["rounds"]) == len(rows) and document["rounds"][0]["rps"] == pytest.approx(1000.0)
    assert {(m["server"], m["phase"]) for m in document["medians"]} == {(r.server, r.phase) for r in rows}
    assert {g["name"] for g in document["goals"]} == {g.name for g in checks}
    assert document["meta"]["rounds"] == 3 and "finished_at" in document["meta"]


def test_the_instruction_count_is_read_from_a_callgrind_file_and_anything_else_is_refused():
    from loadtests.bench_core import callgrind_total

    assert callgrind_total("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 1523210836\n") == 1523210836
    assert callgrind_total("events: Ir\nfn=main\n16 3\ntotals: 42\n") == 42
    with pytest.raises(ValueError, match="not a callgrind output"):
        callgrind_total("Ir 1,523,210,836 (100.0%) PROGRAM TOTALS")


def test_bench_trees_reads_its_trees_and_reports_medians_per_tree(tmp_path: Path) -> None:
    from loadtests import bench_trees

    args = bench_trees.parse_args([f"base={tmp_path}", "after=."])
    assert args.tree_dirs == {"base": str(tmp_path.resolve()), "after": str(Path().resolve())}
    rows = {
        (EMBEDDED, "base", 150.0): [(3.0, 4.0, 10.0, {"http": 0.4}, 0), (3.4, 5.0, 30.0, {"http": 0.6}, 1),
                                    (3.2, 4.5, 20.0, {"http": 0.5}, 0)],
        (EMBEDDED, "after", 150.0): [(2.0, 3.0, 9.0, {"http": 0.1}, 0)],
    }  # fmt: skip
    lines = bench_trees.summary(rows).splitlines()
    assert lines[1].split()[3:5] == ["CPU", "3.200"] and "p99 20.00" in lines[1] and "errors 1" in lines[1]
    assert lines[2].strip() == "http 0.500" and lines[3].split()[4] == "2.000"
