"""`nbo models ...` (the registry: list, show, promote, rollback, challenger, compare) and `nbo admin reload`.

The registry commands write the pointer file in NBO_MODEL_DIR; running replicas pick the change up within
NBO_MODEL_POLL_SECONDS (see app/reloading.py), no restart needed.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from app.settings import Settings

models_cli = typer.Typer(help="The model registry: versions, champion, challenger, comparison.", no_args_is_help=True)
admin_cli = typer.Typer(help="Operate a running service.", no_args_is_help=True)

Name = Annotated[str | None, typer.Option("--name", help="Model name (default NBO_MODEL_NAME)")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _registry(name: str | None) -> tuple[Any, str]:
    from models.registry import ModelRegistry

    settings = Settings()
    return ModelRegistry(settings.model_dir), name or settings.model_name


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=code)


def _role(pointers: Any, version: str) -> str:
    if version == pointers.champion:
        return "champion"
    if version == pointers.challenger:
        return f"challenger {pointers.challenger_share:g}"
    return "previous champion" if version in pointers.previous else ""


def _summary(meta: Any, pointers: Any) -> dict[str, Any]:
    holdout = dict(meta.metrics).get("holdout", {})
    return {
        "version": meta.version,
        "role": _role(pointers, meta.version),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meta.created_at)),
        "training_rows": meta.training_rows,
        "offers": len(meta.offer_ids),
        "auc": holdout.get("auc") if isinstance(holdout, dict) else None,
    }


@models_cli.command("list")
def models_list(name: Name = None, as_json: AsJson = False) -> None:
    """Every registered version, oldest first, with its role (champion, challenger and share)."""
    registry, name = _registry(name)
    pointers = registry.pointers(name)
    rows = [_summary(m, pointers) for m in registry.list_versions(name)]
    if as_json:
        typer.echo(json.dumps({"model": name, "versions": rows, "pointers": _pointers(pointers)}, indent=2))
        return
    if not rows:
        typer.echo(f"no versions of model {name!r} in {registry.root}")
    for r in rows:
        auc = "" if r["auc"] is None else f"auc {r['auc']:.3f}"
        typer.echo(f"{r['version']}  {r['created_at']}  rows {r['training_rows']:>8}  {auc:<9}  {r['role']}")


@models_cli.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="A version (see `nbo models list`)")], name: Name = None
) -> None:
    """A version's metadata as JSON: metrics, parameters, offers, features and role."""
    from models.registry import ModelNotFound

    registry, name = _registry(name)
    try:
        meta = registry.metadata(name, version)
    except ModelNotFound as error:
        raise _fail(str(error)) from None
    shown = meta.to_dict()
    shown.pop("encoder", None)  # the encoder's vocabularies: long, and not what an operator reads
    shown["role"] = _role(registry.pointers(name), version)
    typer.echo(json.dumps(shown, indent=2, default=str))


@models_cli.command("promote")
def models_promote(version: Annotated[str, typer.Argument(help="The version to serve")], name: Name = None) -> None:
    """Make a version the champion; the current one is kept for `rollback`."""
    from models.registry import ModelNotFound

    registry, name = _registry(name)
    before = registry.pointers(name).champion
    try:
        after = registry.promote(name, version)
    except ModelNotFound as error:
        raise _fail(str(error)) from None
    typer.echo(f"champion of {name}: {after.champion} (was {before or 'none'})")


@models_cli.command("rollback")
def models_rollback(name: Name = None) -> None:
    """Make the previous champion the champion again."""
    from models.registry import ModelNotFound

    registry, name = _registry(name)
    before = registry.pointers(name).champion
    try:
        after = registry.rollback(name)
    except ModelNotFound as error:
        raise _fail(str(error)) from None
    typer.echo(f"champion of {name}: {after.champion} (rolled back from {before})")


@models_cli.command("challenger")
def models_challenger(
    version: Annotated[str, typer.Argument(help="The challenger version")],
    share: Annotated[float, typer.Option(help="Share of customers it scores, 0 < S < 1; 0 removes it")],
    name: Name = None,
) -> None:
    """Send a share of customers (by a stable hash of their id) to a challenger; --share 0 removes it."""
    from models.registry import ModelNotFound

    registry, name = _registry(name)
    try:
        after = registry.clear_challenger(name) if share == 0 else registry.set_challenger(name, version, share)
    except ModelNotFound as error:
        raise _fail(str(error)) from None
    except ValueError as error:
        raise _fail(str(error), code=2) from None
    if after.challenger is None:
        typer.echo(f"no challenger for {name}; champion {after.champion} scores everyone")
    else:
        typer.echo(f"challenger of {name}: {after.challenger} for {after.challenger_share:.0%} of customers")


@models_cli.command("compare")
def models_compare(
    name: Name = None,
    days: Annotated[float | None, typer.Option(help="Only decisions of the last D days")] = None,
    as_json: AsJson = False,
) -> None:
    """Champion vs challenger and treated vs control from the contact history: acceptance per contact
    (95% Wilson interval) and value per contact (95% normal interval), with counts."""
    from models.comparison import compare

    registry, name = _registry(name)
    pointers = registry.pointers(name)
    since = None if days is None else time.time() - days * 86_400
    cells = asyncio.run(_group_outcomes(Settings().history_read_url, since))
    report = {"model": name, **compare(cells, pointers.champion, pointers.challenger)}
    typer.echo(json.dumps(report, indent=2) if as_json else _compare_text(report))


async def _group_outcomes(url: str, since: float | None) -> list[Any]:
    from history.database import make_engine
    from history.outcomes import group_outcomes

    engine = make_engine(url)
    try:
        return await group_outcomes(engine, since)
    except Exception as error:  # not migrated, unreachable: say so in one line
        raise _fail(f"cannot read the contact history: {type(error).__name__}: {error}".splitlines()[0]) from None
    finally:
        await engine.dispose()


def _compare_text(report: dict[str, Any]) -> str:
    lines = [
        f"{'arm':<34} {'decisions':>9} {'contacts':>8} {'accepted':>8}  acceptance (95%)        value/contact (95%)"
    ]
    arms = [(f"{role} {a['name']}", a) for role, a in report["models"].items()]
    arms += [(role, a) for role, a in report["groups"].items()]
    for label, a in arms:
        lines.append(
            f"{label[:34]:<34} {a['decisions']:>9} {a['contacts']:>8} {a['accepted']:>8}  {_rate(a)}  {_value(a)}"
        )
    return "\n".join(lines)


def _rate(a: dict[str, Any]) -> str:
    if a["acceptance"] is None:
        return f"{'-':<22}"
    low, high = a["acceptance_95"]
    return f"{a['acceptance']:.2%} [{low:.2%}, {high:.2%}]".ljust(22)


def _value(a: dict[str, Any]) -> str:
    if a["value_per_contact"] is None:
        return "-"
    low, high = a["value_95"]
    return f"{a['value_per_contact']:.2f} [{low:.2f}, {high:.2f}]"


def _pointers(pointers: Any) -> dict[str, Any]:
    return {
        "champion": pointers.champion,
        "challenger": pointers.challenger,
        "challenger_share": pointers.challenger_share,
        "previous": list(pointers.previous),
    }


@admin_cli.command("reload")
def admin_reload(
    url: Annotated[str | None, typer.Option(help="The service's base URL (default http://NBO_HOST:NBO_PORT)")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer")] = 60.0,
) -> None:
    """Ask a running service to reload its catalogue and model (POST /v1/admin/reload).

    One call reaches one process: behind a load balancer, call each replica (or rely on the model poll,
    which every worker runs)."""
    settings = Settings()
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    request = urllib.request.Request(f"{base}/v1/admin/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise _fail(_refusal(error)) from None
    except (urllib.error.URLError, OSError) as error:
        raise _fail(f"cannot reach {base}: {error}") from None
    typer.echo(f"reloaded: catalogue {body['catalogue_version']}, model {body['model_version']}")


def _refusal(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        problems = [d["problem"] for d in body["detail"]]
    except (ValueError, KeyError, TypeError):
        return f"reload failed: HTTP {error.code}"
    return "\n".join(
        [f"reload refused (HTTP {error.code}); still serving the previous catalogue and model:", *problems]
    )
