"""Adapters that wrap the real ones to put the service in a state a test needs (built through
`create_app(service_factory=...)`, never by patching the service's attributes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from decisioning.ports import ContactHistory, CustomerLock


class GatedLocks:
    """The real customer locks, entered only once `gate` is set: decisions stay in progress until then."""

    def __init__(self, inner: CustomerLock, gate: asyncio.Event) -> None:
        self.inner = inner
        self.gate = gate

    @contextlib.asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[None]:
        await self.gate.wait()
        async with self.inner.hold(customer_id):
            yield


class UnreachableHistory:
    """A history whose database is gone: every call fails as a dropped connection does."""

    def __init__(self, inner: ContactHistory) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        async def unreachable(*args: object, **kwargs: object) -> Any:
            raise ConnectionRefusedError(f"history unreachable ({name})")

        return unreachable

    async def close(self) -> None:
        await self.inner.close()
