"""The marketer's view of the catalogue: offers, rules, budgets used and left, policies in words, and the
validation of a draft directory (a path on the server or uploaded files), problem by problem."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from app.console.session import PostedBy, Who
from app.console.web import page
from app.console.words import describe_budget, describe_policy
from decisioning.catalogue import Offer
from decisioning.ports import StoreUnavailable
from policies.loader import validate_catalogue
from policies.problems import Problem
from service.service import DecisionService

router = APIRouter()
MAX_UPLOAD_BYTES = 1024 * 1024  # per file: a catalogue is text, a few hundred KB at most
MAX_UPLOAD_FILES = 20


@dataclass(frozen=True)
class BudgetUse:
    words: str
    limit: int
    used: int | None  # None: the budget store did not answer

    @property
    def left(self) -> int | None:
        return None if self.used is None else max(self.limit - self.used, 0)


@router.get("/console/catalogue", response_class=HTMLResponse)
async def catalogue_page(request: Request, who: Who) -> HTMLResponse:
    """Everything the service serves now. Any valid key (as GET /v1/offers)."""
    service: DecisionService = request.app.state.service
    catalogue = service.catalogue
    now = service.clock()
    budgets = {o.id: await budget_use(service, o, now) for o in catalogue.offers if o.budget is not None}
    policies = [(p, describe_policy(p)) for p in catalogue.policies]
    return page(request, "catalogue.html", who, section="catalogue", catalogue=catalogue, now=now,
                budgets=budgets, policies=policies, budget_words=describe_budget)  # fmt: skip


async def budget_use(service: DecisionService, offer: Offer, now: float) -> BudgetUse | None:
    """Used and left in the offer's current period, read from the shared budget store."""
    if offer.budget is None:
        return None
    try:
        used: int | None = await service.budgets.counter.used(service.budgets.key(offer, now))
    except StoreUnavailable:
        used = None
    return BudgetUse(describe_budget(offer.budget), offer.budget.limit, used)


@router.post("/console/catalogue/validate", response_class=HTMLResponse)
async def validate(
    request: Request,
    who: PostedBy,
    path: Annotated[str, Form(max_length=4096)] = "",
    files: Annotated[list[UploadFile] | None, Form()] = None,
) -> HTMLResponse:
    """Validate a draft: the directory at `path` on the server, or the uploaded files. Scope `admin`."""
    who.require("admin")
    uploads = [f for f in files or [] if f.filename]
    if uploads:
        problems, shown = await _validate_uploads(uploads)
    elif path.strip():
        shown = path.strip()
        problems = await asyncio.to_thread(validate_catalogue, Path(shown))
    else:
        return page(request, "_validation.html", who, status=422, error="give a directory or upload the files")
    return page(request, "_validation.html", who, problems=problems, shown=shown)


async def _validate_uploads(uploads: list[UploadFile]) -> tuple[list[Problem], str]:
    """Write the uploads into a directory of their own (names only, no paths), validate it, and name the
    problems' files as uploaded."""
    if len(uploads) > MAX_UPLOAD_FILES:
        return [Problem("", "", f"at most {MAX_UPLOAD_FILES} files")], "upload"
    with tempfile.TemporaryDirectory(prefix="nbo-draft-") as directory:
        for upload in uploads:
            name = Path(upload.filename or "").name
            if not name.endswith((".yaml", ".yml")):
                return [Problem(name, "", "not a YAML file (.yaml)")], "upload"
            content = await upload.read(MAX_UPLOAD_BYTES + 1)
            if len(content) > MAX_UPLOAD_BYTES:
                return [Problem(name, "", f"larger than {MAX_UPLOAD_BYTES} bytes")], "upload"
            (Path(directory) / name).write_bytes(content)
        found = await asyncio.to_thread(validate_catalogue, directory)
        names = ", ".join(sorted(Path(u.filename or "").name for u in uploads))
        return [_relative(p, directory) for p in found], f"uploaded files ({names})"


def _relative(problem: Problem, directory: str) -> Problem:
    return Problem(problem.file.removeprefix(directory).lstrip("/"), problem.location, problem.message)
