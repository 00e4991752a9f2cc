"""The layout's dependency rules, read from every module's imports (statically: no module is run).

- `decisioning/` (the pure core) imports none of the project's other packages and no I/O library;
- `service/` (the application layer) imports the core and its ports, never an adapter, a web framework
  or a store's client: adapters are handed to it;
- the adapters and libraries (`models`, `features`, `history`, `coordination`, `policies`, `delivery`) never import
  the web layer `app` or the application layer;
- `batch/` (the overnight batch) may use the core, the application layer and the adapters, never the web
  layer; nothing below it imports `batch` (only `app`, which wires it to the settings);
- `evaluation/` (offline evaluation) uses the core and the history and model adapters, never the
  application or web layers; its estimators are numpy alone (tests/unit/evaluation/test_estimators.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = {"fastapi", "starlette", "sqlalchemy", "redis", "asyncpg", "aiosqlite", "pydantic_settings", "uvicorn"}
RULES = {
    "decisioning": {"app", "service", "features", "history", "models", "policies", "coordination", "batch"}
    | IO_LIBRARIES,
    "service": {"app", "features", "history", "coordination", "policies", "models", "batch"} | IO_LIBRARIES,
    "models": {"app", "service", "batch"},
    "features": {"app", "service", "batch"},
    "history": {"app", "service", "batch"},
    "coordination": {"app", "service", "batch"},
    "policies": {"app", "service", "batch"},
    "delivery": {"app", "service", "batch"},
    "batch": {"app", "fastapi", "starlette", "uvicorn"},
    "evaluation": {"app", "service", "batch", "fastapi", "starlette", "uvicorn"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports (absolute imports; relative ones stay in their package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_only_what_its_layer_may(package: str):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"{package}/ has no modules"
    broken = {
        str(m.relative_to(ROOT)): sorted(imported_packages(m) & RULES[package])
        for m in modules
        if imported_packages(m) & RULES[package]
    }
    assert broken == {}


def test_the_rules_see_a_forbidden_import(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("from app.settings import Settings\nimport redis.asyncio\nfrom . import sibling\n")
    assert imported_packages(module) == {"app", "redis"}
