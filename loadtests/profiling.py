"""A py-spy profile of the server under load (`make bench BENCH_ARGS=--profile`), and its top findings.

py-spy samples each worker from outside (no change to the server, ~1% overhead) and writes collapsed
stacks (`frame;frame;frame count` per line). `top` folds them into the functions holding the most samples,
by self time (the frame on top of the stack) and inclusive time (anywhere on the stack).

    .venv/bin/python -m loadtests.profiling loadtests/results/<run>/profile-nbo-stack-*.txt
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# "function (path/to/file.py:123)" -> "function (file.py)": lines differ within one function.
PROJECT_PACKAGES = ("app", "service", "decisioning", "features", "history", "coordination", "models", "policies")
FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:)]*)(?::\d+)?\)$")


def record(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen | None:
    """Start py-spy on one process (None when py-spy is not installed: `pip install py-spy`)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not installed (pip install py-spy): no profile")
        return None
    command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
               "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frame_name(frame: str) -> str:
    """A stack frame without its line number and directory.

    >>> frame_name("decide (decisioning/engine.py:161)")
    'decide (engine.py)'
    """
    found = FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    return f"{found['name']} ({Path(found['file']).name})"


def stack_frames(stack: str) -> list[str]:
    """The project's own frames of a collapsed stack (the event loop and framework frames under every
    request would fill an inclusive list)."""
    return [frame_name(f) for f in stack.split(";") if _ours(f)]


def _ours(frame: str) -> bool:
    # py-spy names files relative to sys.path when it can ("service/decisions.py"), else absolute.
    return any(f"({p}/" in frame or f"/{p}/" in frame for p in PROJECT_PACKAGES) and ".venv" not in frame


def top(collapsed: str, n: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive): the `n` functions with the largest share of the samples, as fractions.

    >>> top("main (/x/a.py:1);f (/x/service/b.py:2) 3\\nmain (/x/a.py:1);g (/x/app/c.py:9) 1", 2)
    ([('f (b.py)', 0.75), ('g (c.py)', 0.25)], [('f (b.py)', 0.75), ('g (c.py)', 0.25)])
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";") if f]
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for name in set(stack_frames(stack)):
            inclusive[name] += samples
    if not total:
        return [], []
    return ([(k, v / total) for k, v in own.most_common(n)], [(k, v / total) for k, v in inclusive.most_common(n)])


def report(paths: list[Path], n: int = 15) -> str:
    """The top functions over every profile file (the workers of one server), as text."""
    own, inclusive = top("\n".join(p.read_text() for p in paths if p.exists()), n)
    lines = ["self time (on top of the stack):", *(f"  {share:6.1%}  {name}" for name, share in own)]
    lines += ["inclusive time (anywhere on the stack):", *(f"  {share:6.1%}  {name}" for name, share in inclusive)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(report(args.files, args.top))


if __name__ == "__main__":
    main()
