"""What-if: change a lever, a cap or a budget in a draft of the serving catalogue, replay the logged
decisions with it (`evaluation.replay`, the library behind `nbo replay`), and compare with the serving
catalogue: the offer mix (logged, re-decided by the serving catalogue, by the draft) and the value per
presented offer (observed, and the draft's IPS / SNIPS / DR estimates).

The replay reads the decisions of the last `days` from the SQL history and re-decides them in a worker
thread, so that the service keeps answering meanwhile; one replay at a time per process. Only contacts
whose response window has closed are estimated on (an open window would overstate acceptance).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from app.console.drafts import KINDS, Change, DraftRefused, draft_of
from app.console.live import sql_store
from app.console.session import PostedBy, Who
from app.console.web import page
from service.service import DecisionService

if TYPE_CHECKING:
    # Imported when a replay runs, not with the app: the evaluation stack loads LightGBM, and each worker
    # process must answer uvicorn's health check while it starts (see app/main.py's _default_factory).
    from evaluation.ope_rows import ValueEstimates
    from evaluation.replay import ReplayReport

router = APIRouter()
# Fewer bootstrap replicates than `nbo replay`'s 1,000: the page answers in seconds, and the 95% intervals
# it shows move in their second digit only.
BOOTSTRAP = 200
MAX_DAYS = 90.0
# The newest decisions replayed at most: the re-decisions share the server's CPU (and its GIL) with live
# traffic. A whole month of a large bank is for `nbo replay`, offline.
MAX_REPLAYED = 20_000


@router.get("/console/whatif", response_class=HTMLResponse)
async def whatif_page(request: Request, who: Who) -> HTMLResponse:
    """The draft form. Scope `admin` (drafts are the marketers')."""
    who.require("admin")
    catalogue = request.app.state.service.catalogue
    return page(request, "whatif.html", who, section="whatif", catalogue=catalogue, kinds=KINDS)


@router.post("/console/whatif/run", response_class=HTMLResponse)
async def run(
    request: Request,
    who: PostedBy,
    kind: Annotated[str, Form()],
    target: Annotated[str, Form(max_length=128)] = "",
    value: Annotated[str, Form(max_length=32)] = "",
    days: Annotated[float, Form(gt=0, le=MAX_DAYS)] = 7.0,
) -> HTMLResponse:
    """Replay the logged decisions of the last `days` with the draft. Scope `admin`."""
    who.require("admin")
    service: DecisionService = request.app.state.service
    try:
        change = parse_change(kind, target, value)
        draft = draft_of(service.catalogue, change)
    except DraftRefused as refused:
        return page(request, "_whatif_result.html", who, status=422, error=str(refused))
    lock = _lock(request)
    if lock.locked():
        return page(request, "_whatif_result.html", who, status=429, error="a replay is running: try again")
    async with lock:
        began = time.perf_counter()
        report = await replay_with(service, draft, days)
        seconds = time.perf_counter() - began
    if report is None:
        return page(request, "_whatif_result.html", who, status=422, error="this history has no SQL store to read")
    return page(request, "_whatif_result.html", who, report=report, change=change.describe(service.catalogue),
                draft_version=draft.version, days=days, seconds=seconds, chart=chart_data(report),
                most=MAX_REPLAYED)  # fmt: skip


def parse_change(kind: str, target: str, value: str) -> Change:
    """The form's change; DraftRefused for a value that is not a number (blank: no budget)."""
    if kind not in KINDS:
        raise DraftRefused(f"change: one of {', '.join(KINDS)}")
    text = value.strip()
    if not text and kind == "budget":
        return Change("budget", target.strip(), None)
    try:
        number = float(text)
    except ValueError as err:
        raise DraftRefused(f"{kind}: a number") from err
    return Change(kind, target.strip(), number)  # type: ignore[arg-type]


async def replay_with(service: DecisionService, draft: Any, days: float) -> ReplayReport | None:
    """The replay of the last `days` of logged decisions (the newest MAX_REPLAYED): the draft against the
    serving catalogue."""
    from evaluation.redecide import Policy
    from evaluation.replay import ReplayOptions, read_logs, replay_decisions

    sql = sql_store(service.history)
    if sql is None:
        return None
    until = service.clock()
    current, candidate = Policy(service.catalogue, service.scorer), Policy(draft, service.scorer)
    logged, histories = await read_logs(sql.engine, candidate, until - days * 86_400, until)
    logged = logged[-MAX_REPLAYED:]  # oldest first: keep the newest
    options = ReplayOptions(bootstrap=BOOTSTRAP)
    return await asyncio.to_thread(
        replay_decisions, logged, histories, candidate, until, current=current, options=options
    )


def _lock(request: Request) -> asyncio.Lock:
    state = request.app.state
    if getattr(state, "console_replay_lock", None) is None:
        state.console_replay_lock = asyncio.Lock()
    return state.console_replay_lock


def chart_data(report: ReplayReport) -> dict[str, Any]:
    """What whatif.js draws: presentations per offer, and each measure's current vs draft estimates."""
    shifts = sorted(report.presentations, key=lambda s: s.offer_id)
    return {
        "offers": [s.offer_id for s in shifts],
        "logged": [s.logged for s in shifts],
        "current": [s.current or 0 for s in shifts],
        "candidate": [s.candidate for s in shifts],
        "measures": {name: _measure(m) for name, m in _measures(report)},
    }


def _measures(report: ReplayReport) -> list[tuple[str, ValueEstimates]]:
    return [(name, m) for name, m in (("acceptance", report.acceptance), ("value", report.value)) if m is not None]


def _measure(measure: ValueEstimates) -> list[dict[str, Any]]:
    bars = [("serving (observed)", measure.current), ("draft IPS", measure.candidate.ips),
            ("draft SNIPS", measure.candidate.snips), ("draft DR", measure.candidate.dr)]  # fmt: skip
    return [
        {"label": label, "estimate": i.estimate, "low": i.low, "high": i.high} for label, i in bars if i is not None
    ]

