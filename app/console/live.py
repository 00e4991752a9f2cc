"""The operator's live view: decisions per second, latency percentiles, presentations and acceptance per
offer, suppressions per policy, degraded decisions and model versions, refreshed every few seconds.

The page fetches `/console/live/data` (JSON) and redraws its charts (Chart.js, vendored). Counters come
from this process's Prometheus registry (`samples.Sampler`); acceptance rates from the contact history
(the SQL store behind the history port), recomputed at most every HISTORY_REFRESH_SECONDS.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from app.console.samples import Sampler, Snapshot
from app.console.session import Who
from app.console.web import page
from decisioning.ports import ContactHistory
from history.outcomes import offer_response_counts
from history.sql import SqlHistory

router = APIRouter()
ACCEPTANCE_WINDOW_DAYS = 7.0
HISTORY_REFRESH_SECONDS = 5.0
SERIES_POINTS = 150  # five minutes at one poll every two seconds


@router.get("/console/live", response_class=HTMLResponse)
async def live_page(request: Request, who: Who) -> HTMLResponse:
    """Any valid key (the same figures as the open /metrics)."""
    sampler(request).sample(time.time())  # the first point of the series starts here
    return page(request, "live.html", who, section="live", window_days=ACCEPTANCE_WINDOW_DAYS)


@router.get("/console/live/data")
async def live_data(request: Request, who: Who) -> JSONResponse:
    """Everything the live page draws, as JSON."""
    service = request.app.state.service
    snap = sampler(request).sample(time.time())
    acceptance = await _acceptance(request, service.history)
    body = {
        "at": snap.at,
        "series": [asdict(p) for p in sampler(request).series()[-SERIES_POINTS:]],
        "decisions": snap.decisions,
        "offers": offer_rows(snap, acceptance),
        "suppressions": _sorted(snap.suppressions),
        "degraded": _sorted(snap.degraded),
        "models": _sorted(snap.models),
        "responses": _sorted(snap.responses),
        "serving": {"model": service.scorer.version, "catalogue": service.catalogue.version},
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def sampler(request: Request) -> Sampler:
    state = request.app.state
    if getattr(state, "console_sampler", None) is None:
        state.console_sampler = Sampler(state.metrics.registry)
    return state.console_sampler


def offer_rows(snap: Snapshot, acceptance: dict[str, tuple[int, int]] | None) -> list[dict[str, Any]]:
    """Per offer: presentations since this process started, and accepted / contacts in the history window."""
    offers = sorted(set(snap.presented) | set(acceptance or {}))
    rows = []
    for offer in offers:
        accepted, contacts = (acceptance or {}).get(offer, (0, 0))
        rate = accepted / contacts if contacts else None
        rows.append({"offer": offer, "presented": snap.presented.get(offer, 0.0), "accepted": accepted,
                     "contacts": contacts, "acceptance_rate": rate})  # fmt: skip
    return rows


def _sorted(counts: dict[str, float]) -> list[list[Any]]:
    return [[k, v] for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def sql_store(history: ContactHistory) -> SqlHistory | None:
    """The SQL history behind the port's wrappers (write-behind stream, spool), None when there is none."""
    for _ in range(4):
        if isinstance(history, SqlHistory):
            return history
        inner = getattr(history, "sql", None)
        if inner is None:
            return None
        history = inner
    return None


async def _acceptance(request: Request, history: ContactHistory) -> dict[str, tuple[int, int]] | None:
    """offer -> (accepted, contacts) over the window, cached for a few seconds (one query per refresh)."""
    state = request.app.state
    cached = getattr(state, "console_acceptance", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < HISTORY_REFRESH_SECONDS:
        return cached[1]
    sql = sql_store(history)
    if sql is None:
        return None
    try:
        counts = dict(await offer_response_counts(sql.engine, since=time.time() - ACCEPTANCE_WINDOW_DAYS * 86_400))
    except Exception:  # the history is down: the live view still shows the counters
        return cached[1] if cached else None
    state.console_acceptance = (now, counts)
    return counts
