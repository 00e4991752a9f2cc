"""The decision core stays pure: no web framework, database, cache client or settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "redis",
    "asyncpg",
    "aiosqlite",
    "pydantic_settings",
    "app",
)


def test_decisioning_imports_no_io_library():
    modules = sorted(p.stem for p in Path("decisioning").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('decisioning.' + m)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    assert len(modules) >= 8
