"""A circuit breaker: once a store has failed `failure_threshold` times in a row, stop calling it for
`cooldown_seconds`, so that an outage costs each request nothing instead of a timeout.

closed -> (threshold consecutive failures) -> open -> (cool-down over) -> half-open: one probe call goes
through; its success closes the circuit, its failure opens it for another cool-down. While half-open, the
other calls are refused at once (one probe is enough to learn whether the store is back).

>>> breaker = CircuitBreaker("redis", failures=(OSError,), failure_threshold=3, cooldown_seconds=1.0)
>>> breaker.state
'closed'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from decisioning.ports import StoreUnavailable

log = logging.getLogger("nbo.breaker")
T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one store; `call` refuses (`StoreUnavailable`) while open.

    `failures` are the exception types that mean "the store is down or slow" (connection refused, timeout);
    any other exception, and those in `ignored` (a subclass of a failure that is the caller's fault), passes
    through untouched and does not count. `clock` is monotonic seconds.
    """

    def __init__(
        self,
        store: str,
        *,
        failures: tuple[type[BaseException], ...],
        ignored: tuple[type[BaseException], ...] = (),
        failure_threshold: int = 3,
        cooldown_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.store = store
        self.failures = failures
        self.ignored = ignored
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown_seconds
        self._clock = clock
        self.state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self.opened = 0  # how many times the circuit opened (a metric)

    def allow(self) -> bool:
        """Whether a call may go to the store now; moving to half-open (one probe) once the cool-down is over."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            self.state, self._probing = HALF_OPEN, False
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        if self.state != CLOSED:
            log.warning("store back: circuit closed", extra={"store": self.store})
        self.state, self._consecutive, self._probing = CLOSED, 0, False

    def failed(self) -> None:
        self._consecutive += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self._consecutive >= self.failure_threshold):
            self._open()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`await fn()` through the breaker; a store failure (or an open circuit) raises `StoreUnavailable`."""
        if not self.allow():
            raise StoreUnavailable(self.store, "circuit open")
        try:
            result = await fn()
        except self.ignored:
            self._probing = False
            raise
        except self.failures as error:
            self.failed()
            raise StoreUnavailable(self.store, type(error).__name__) from error
        except BaseException:
            self._probing = False  # a cancelled or buggy probe tells nothing: let the next call probe
            raise
        self.succeeded()
        return result

    def _open(self) -> None:
        if self.state != OPEN:
            self.opened += 1
            log.warning("store unreachable: circuit open", extra={"store": self.store, "cooldown_s": self.cooldown})
        self.state, self._opened_at, self._probing = OPEN, self._clock(), False
