"""The circuit breaker on a fake clock: closed -> open after the threshold, one half-open probe, recovery."""

from __future__ import annotations

import pytest

from coordination.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from decisioning.ports import StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    def __init__(self) -> None:
        self.up, self.calls = True, 0

    async def call(self) -> str:
        self.calls += 1
        if not self.up:
            raise ConnectionRefusedError("down")
        return "ok"


@pytest.fixture
def parts() -> tuple[CircuitBreaker, Store, Clock]:
    clock = Clock()
    return (
        CircuitBreaker("redis", failures=(OSError,), failure_threshold=3, cooldown_seconds=2.0, clock=clock),
        Store(),
        clock,
    )


async def test_opens_after_threshold_and_then_costs_no_call(parts):
    breaker, store, _ = parts
    store.up = False
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await breaker.call(store.call)
    assert breaker.state == OPEN and store.calls == 3
    for _ in range(100):
        with pytest.raises(StoreUnavailable, match="circuit open"):
            await breaker.call(store.call)
    assert store.calls == 3  # an open circuit never reaches the store


async def test_a_success_resets_the_count(parts):
    breaker, store, _ = parts
    store.up = False
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await breaker.call(store.call)
    store.up = True
    assert await breaker.call(store.call) == "ok"
    store.up = False
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await breaker.call(store.call)
    assert breaker.state == CLOSED


async def test_half_open_probe_closes_on_success(parts):
    breaker, store, clock = parts
    store.up = False
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await breaker.call(store.call)
    clock.now = 1.9
    assert not breaker.allow()
    clock.now = 2.0
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.allow()


async def test_failed_probe_opens_for_another_cooldown(parts):
    breaker, store, clock = parts
    store.up = False
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await breaker.call(store.call)
    clock.now = 2.5
    with pytest.raises(StoreUnavailable):
        await breaker.call(store.call)  # the probe
    assert breaker.state == OPEN and store.calls == 4
    clock.now = 4.0
    with pytest.raises(StoreUnavailable, match="circuit open"):
        await breaker.call(store.call)
    clock.now = 4.5
    store.up = True
    assert await breaker.call(store.call) == "ok"
    assert breaker.state == CLOSED and breaker.opened == 2


async def test_other_errors_pass_through_and_do_not_count(parts):
    breaker, _, _ = parts

    async def bug() -> None:
        raise KeyError("x")

    for _ in range(5):
        with pytest.raises(KeyError):
            await breaker.call(bug)
    assert breaker.state == CLOSED
