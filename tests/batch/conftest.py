"""Helpers for the overnight batch tests: a catalogue copy without randomness, customers as Parquet."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decisioning.catalogue import Catalogue
from models.demo.customers import generate_customers
from policies.loader import load_catalogue

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "policies" / "demo"
STACK = ROOT / "tests" / "fixtures" / "stack_catalogue"
AS_OF = float(int(time.time()))  # features age and calendar windows are relative to this moment


def deterministic_copy(source: Path, target: Path) -> Path:
    """The catalogue with the control group and exploration off, so that online and batch can be compared
    offer for offer (both use the same stable hash and seeds; off, there is nothing left to chance)."""
    shutil.copytree(source, target)
    path = target / "catalogue.yaml"
    text = path.read_text()
    text = re.sub(r"share: [0-9.]+", "share: 0", text)
    text = re.sub(r"exploration: \{[^}]*\}", "exploration: {kind: none}", text)
    path.write_text(text)
    return target


def write_customers(catalogue: Catalogue, path: Path, n: int, seed: int = 3) -> list[str]:
    """`n` generated customers as a feature Parquet file (as the nightly feature file would be)."""
    people = generate_customers(n, catalogue.features, seed=seed, now=AS_OF)
    columns = {"customer_id": [cid for cid, _ in people]}
    for spec in catalogue.features:
        columns[spec.name] = [values.get(spec.name) for _, values in people]
    pq.write_table(pa.table(columns), path, row_group_size=max(1, n // 3))
    return columns["customer_id"]


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    return deterministic_copy(DEMO, tmp_path / "catalogue")


@pytest.fixture
def demo_catalogue(demo_dir: Path) -> Catalogue:
    return load_catalogue(demo_dir)
