"""Every worker process of `nbo serve --workers N` writes the service's JSON logs (README: "JSON logs on
stdout"): an operator must see each worker start, and above all each worker's errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import ServiceProcess

pytestmark = pytest.mark.services  # real Redis and PostgreSQL, never skipped


def test_every_worker_logs_that_it_is_ready(serve: Callable[..., ServiceProcess]) -> None:
    server = serve(workers=2)
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert sum(line["msg"] == "service ready" for line in lines) == 2, server.log()[-2000:]
