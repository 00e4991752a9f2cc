"""The `services` marker is truthful: `-m "not services"` passes with no Redis or PostgreSQL to reach, and the
Redis tests go to the Redis that NBO_TEST_REDIS_URL names. Runs pytest on the suites that mix both kinds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {"NBO_TEST_REDIS_URL": "redis://127.0.0.1:1/0", "NBO_TEST_PG_SERVER": "postgresql://postgres@127.0.0.1:1"}
MIXED = [
    "tests/contract/test_cache_contract.py",
    "tests/contract/test_budget_contract.py",
    "tests/contract/test_customer_locks.py",
    "tests/contract/test_stream_history.py",
]


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | NOWHERE
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_tests_not_marked_services_need_no_service():
    done = pytest_run("-m", "not services", *MIXED)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout


def test_the_lock_tests_use_the_test_redis_url():
    # The [cluster] variants run on the Redis Cluster the tests start themselves, whatever the URL says.
    done = pytest_run("-m", "services", "-k", "not cluster", "tests/contract/test_customer_locks.py")
    assert done.returncode == 1, done.stdout[-3000:]  # 5: nothing was marked; 0: another Redis was used
    assert f"Redis at {NOWHERE['NBO_TEST_REDIS_URL']} is unreachable" in done.stdout
    assert " passed" not in done.stdout.splitlines()[-1]
