"""`nbo serve` refuses to start on settings or a catalogue that cannot work: it says why in plain lines,
exits non-zero and never starts uvicorn. Real processes on the embedded mode (no Redis or PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import CATALOGUE, ROOT, free_port

STARTED = "Started server process"  # uvicorn's first log line


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    return env | {
        "NBO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        "NBO_MODEL_DIR": str(tmp_path / "models"),
        "NBO_FEATURES_FILE": str(tmp_path / "no-features.parquet"),
        **extra,
    }


def nbo(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `nbo` to its end; a server that starts instead of refusing is killed (group and all) and fails."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"nbo {' '.join(args)} kept running instead of refusing:\n{out[-2000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def broken_catalogue(tmp_path: Path) -> Path:
    directory = Path(shutil.copytree(CATALOGUE, tmp_path / "catalogue"))
    offers = directory / "offers.yaml"
    text = offers.read_text()
    assert "group: " in text
    offers.write_text(text.replace("group: ", "group: no_such_group_", 1))
    return directory


def test_serve_lists_the_problems_of_a_broken_catalogue_as_validate_does(tmp_path: Path):
    directory = broken_catalogue(tmp_path)
    env = embedded_env(tmp_path, NBO_CATALOGUE_DIR=str(directory))
    validate = nbo("catalogue", "validate", env=env)
    assert validate.returncode == 1 and "no_such_group_" in validate.stderr

    served = nbo("serve", "--port", str(free_port()), env=env, timeout=30)
    assert served.returncode != 0
    problems = [line for line in served.stderr.splitlines() if line.startswith(str(directory))]
    assert problems == validate.stderr.splitlines()
    assert "Traceback" not in served.stdout + served.stderr
    assert STARTED not in served.stdout, "uvicorn was started on a broken catalogue"


@pytest.mark.parametrize("how", ["environment", "option"])
def test_serve_refuses_several_workers_in_the_embedded_mode(tmp_path: Path, how: str):
    env = embedded_env(tmp_path, **({"NBO_WORKERS": "2"} if how == "environment" else {}))
    option = ["--workers", "2"] if how == "option" else []
    served = nbo("serve", "--port", str(free_port()), *option, env=env, timeout=30)
    assert served.returncode != 0
    assert "NBO_REDIS_URL" in served.stderr and "Traceback" not in served.stderr, served.stderr
    assert STARTED not in served.stdout
