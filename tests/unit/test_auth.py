"""The in-process key cache (app.auth.KeyVerifier) and the caller's scope and channel checks."""

from __future__ import annotations

import asyncio

import pytest

from app import auth
from app.auth import Caller, Forbidden, KeyVerifier
from history.keys import ApiKey

WEB_BANK = ApiKey("0123456789", "web_bank", frozenset({"decide"}), frozenset({"web"}), 0.0)


class CountingLookup:
    """A key lookup that knows one key and counts its calls."""

    def __init__(self, known: dict[str, ApiKey]) -> None:
        self.known, self.calls = known, 0

    async def verify(self, key: str) -> ApiKey | None:
        self.calls += 1
        return self.known.get(key)


async def test_a_verified_key_is_trusted_for_the_cache_time_then_checked_again():
    now = [0.0]
    lookup = CountingLookup({"k": WEB_BANK})
    verifier = KeyVerifier(lookup, ttl=2.0, clock=lambda: now[0])
    assert await verifier.verify("k") == WEB_BANK
    lookup.known.clear()  # revoked in the store
    now[0] = 1.99
    assert await verifier.verify("k") == WEB_BANK and lookup.calls == 1
    now[0] = 2.0
    assert await verifier.verify("k") is None and lookup.calls == 2


async def test_an_unknown_key_is_cached_too_so_that_retries_do_not_reach_the_store():
    lookup = CountingLookup({})
    verifier = KeyVerifier(lookup, ttl=2.0, clock=lambda: 0.0)
    for _ in range(5):
        assert await verifier.verify("guess") is None
    assert lookup.calls == 1


async def test_the_cache_stays_bounded_under_a_flood_of_random_keys(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(auth, "MAX_CACHED_KEYS", 10)
    verifier = KeyVerifier(CountingLookup({}), ttl=60.0, clock=lambda: 0.0)
    for i in range(100):
        await verifier.verify(f"guess-{i}")
    assert len(verifier._cache) <= 10
    assert all("guess" not in digest for digest in verifier._cache)  # keyed by hash, not by key


def test_a_caller_is_held_to_its_scopes_and_channels():
    caller = Caller(WEB_BANK)
    caller.require_scope("decide")
    caller.require_channel("web")
    with pytest.raises(Forbidden, match="lacks the scope 'respond'"):
        caller.require_scope("respond")
    with pytest.raises(Forbidden, match="may not use channel 'call_centre'"):
        caller.require_channel("call_centre")
    Caller(None).require_scope("admin")  # NBO_AUTH=none: everything allowed


class GatedLookup(CountingLookup):
    """Answers only once the gate opens, so that many verifications are in flight together."""

    def __init__(self, known: dict[str, ApiKey]) -> None:
        super().__init__(known)
        self.gate = asyncio.Event()

    async def verify(self, key: str) -> ApiKey | None:
        await self.gate.wait()
        return await super().verify(key)


async def test_a_burst_of_requests_with_one_uncached_key_makes_one_lookup():
    lookup = GatedLookup({"k": WEB_BANK})
    verifier = KeyVerifier(lookup, ttl=2.0, clock=lambda: 0.0)
    burst = [asyncio.create_task(verifier.verify("k")) for _ in range(500)]
    await asyncio.sleep(0)
    burst[0].cancel()  # a caller that went away does not cancel the others' lookup
    lookup.gate.set()
    answers = await asyncio.gather(*burst[1:])
    assert answers == [WEB_BANK] * 499 and lookup.calls == 1


async def test_a_failed_lookup_fails_its_waiters_and_the_next_request_tries_again():
    class Down(CountingLookup):
        async def verify(self, key: str) -> ApiKey | None:
            self.calls += 1
            raise ConnectionError("store down")

    lookup = Down({})
    verifier = KeyVerifier(lookup, ttl=2.0, clock=lambda: 0.0)
    results = await asyncio.gather(*(verifier.verify("k") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and lookup.calls == 1
    with pytest.raises(ConnectionError):
        await verifier.verify("k")
    assert lookup.calls == 2


async def test_while_the_key_store_is_unreachable_the_last_answer_for_a_key_stands():
    now, down = [0.0], [False]

    class Flaky(CountingLookup):
        async def verify(self, key: str) -> ApiKey | None:
            self.calls += 1
            if down[0]:
                raise ConnectionError("store down")
            return self.known.get(key)

    lookup = Flaky({"k": WEB_BANK})
    verifier = KeyVerifier(lookup, ttl=2.0, clock=lambda: now[0])
    assert await verifier.verify("k") == WEB_BANK
    down[0], now[0] = True, 5.0
    assert await verifier.verify("k") == WEB_BANK  # PostgreSQL down: the key verified before still works
    with pytest.raises(ConnectionError):
        await verifier.verify("never-seen")  # nothing known of it: no answer to fall back on
    down[0], now[0] = False, 10.0
    lookup.known.clear()  # revoked while the store was down: seen once it answers
    assert await verifier.verify("k") is None
