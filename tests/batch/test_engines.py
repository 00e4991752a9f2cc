"""The same partition function on both engines gives the same list, row for row; runs resume."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.engines import DaskEngine, InProcessEngine
from batch.job import PrescoreJob
from batch.partition import PartitionResult
from batch.run import RunMismatch, prescore
from policies.loader import load_catalogue
from tests.batch.conftest import AS_OF, DEMO, STACK, write_customers

CUSTOMERS = 900
PARTITION = 200  # 5 partitions, the last one short; the file's row groups (300) do not line up with them


@pytest.fixture
def features(tmp_path: Path) -> Path:
    path = tmp_path / "customers.parquet"
    write_customers(load_catalogue(DEMO), path, CUSTOMERS)
    return path


def _job(run_id: str) -> PrescoreJob:
    # The demo catalogue as shipped: exploration and the control group are on, seeded by (run id, customer).
    return PrescoreJob(run_id, DEMO, Path("/nonexistent-models"), "nbo", "email", 3, AS_OF)


def _run(tmp_path: Path, features: Path, engine, run_id: str = "r-1", name: str = "out"):
    out = tmp_path / f"{name}.parquet"
    result = prescore(_job(run_id), features, out, run_dir=tmp_path / name / run_id, engine=engine, summaries={},
                      partition_size=PARTITION, progress=False)  # fmt: skip
    return result, pq.read_table(out)


def test_in_process_and_dask_give_the_same_list_row_for_row(tmp_path: Path, features: Path):
    engine = InProcessEngine(workers=2)
    try:
        local, local_rows = _run(tmp_path, features, engine, name="local")
    finally:
        engine.close()
    dask = DaskEngine(workers=2)
    try:
        remote, dask_rows = _run(tmp_path, features, dask, name="dask")
    finally:
        dask.close()
    assert local_rows.to_pylist() == dask_rows.to_pylist()
    assert local.stats.to_dict() == remote.stats.to_dict()
    assert local.stats.customers == CUSTOMERS and local.partitions == 5
    assert set(local_rows.column("customer_id").to_pylist()) == {f"c-{i:06d}" for i in range(1, CUSTOMERS + 1)}
    modes = set(local_rows.column("mode").to_pylist())
    assert "epsilon_greedy" in modes and "control" in modes  # randomness on, and still the same rows


class _Crashing:
    """An engine that loses the run after `after` partitions (a killed job)."""

    def __init__(self, after: int) -> None:
        self.inner, self.after = InProcessEngine(1), after

    def run(self, job, parts):
        for i, result in enumerate(self.inner.run(job, parts)):
            if i == self.after:
                raise KeyboardInterrupt
            yield result

    def close(self) -> None: ...


class _Counting(InProcessEngine):
    def __init__(self) -> None:
        super().__init__(1)
        self.ran: list[int] = []

    def run(self, job, parts):
        for result in super().run(job, parts):
            self.ran.append(result.index)
            yield result


def test_a_rerun_with_the_same_run_id_skips_finished_partitions(tmp_path: Path, features: Path):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, features, _Crashing(after=2), name="run")
    run_dir = tmp_path / "run" / "r-1"
    assert sorted(p.name for p in run_dir.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    again = _Counting()
    result, rows = _run(tmp_path, features, again, name="run")
    assert again.ran == [2, 3, 4] and result.resumed == 2
    _, fresh = _run(tmp_path, features, InProcessEngine(1), run_id="r-1", name="fresh")
    assert rows.to_pylist() == fresh.to_pylist()  # resumed = uninterrupted, same run id
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["customers"] == CUSTOMERS and summary["chosen"]
    assert (run_dir / "summary.txt").read_text().startswith("customers: 900")


def test_a_run_id_cannot_resume_a_different_job(tmp_path: Path, features: Path):
    _run(tmp_path, features, InProcessEngine(1), name="run")
    other = PrescoreJob("r-1", DEMO, Path("/nonexistent-models"), "nbo", "sms", 3, AS_OF)
    with pytest.raises(RunMismatch, match="job"):
        prescore(other, features, tmp_path / "x.parquet", run_dir=tmp_path / "run" / "r-1", engine=InProcessEngine(1),
                 summaries={}, partition_size=PARTITION, progress=False)  # fmt: skip


def test_a_customer_with_no_offer_gets_one_row_with_the_reason(tmp_path: Path):
    # The stack bank's groups all want age >= 18: a 16-year-old gets nothing, with the reason.
    path = tmp_path / "few.parquet"
    pq.write_table(pa.table({"customer_id": ["c-young", "c-adult"], "age": [16, 40]}), path)
    job = PrescoreJob("r-1", STACK, Path("/nonexistent-models"), "nbo", "email", 2, AS_OF)
    result = prescore(job, path, tmp_path / "out.parquet", run_dir=tmp_path / "r-1", engine=InProcessEngine(1),
                      summaries={}, progress=False)  # fmt: skip
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    young = [r for r in rows if r["customer_id"] == "c-young"]
    assert [(r["rank"], r["offer_id"]) for r in young] == [(0, None)]
    assert young[0]["reason"] == "no offer passes the eligibility, applicability and suitability rules"
    assert [r["rank"] for r in rows if r["customer_id"] == "c-adult"] == [1, 2]
    assert result.stats.no_offer_reasons == {young[0]["reason"]: 1}
    assert result.stats.rule_suppressions == {"eligibility:group:leads:adult": 1, "eligibility:group:savings:adult": 1,
                                              "eligibility:group:cards:adult": 1}  # fmt: skip


def test_partition_results_carry_counts(tmp_path: Path, features: Path):
    results: list[PartitionResult] = list(InProcessEngine(1).run(_job("r"), _parts(features)))
    assert sum(r.stats.customers for r in results) == CUSTOMERS
    assert all(r.stats.rule_suppressions for r in results)


def _parts(features: Path):
    from batch.reading import partitions

    return partitions(features, PARTITION, {})
