"""The processes of `make bench`: servers started on free ports, and the CPU they spend, from /proc.

CPU is read from `/proc/<pid>/stat` (utime + stime) of every process of a server (uvicorn's supervisor
and its workers), of the private Redis server, and of the PostgreSQL backends serving the bench's
database, before and after each phase.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far; 0 when it is gone (or not readable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (uvicorn's workers, and their multiprocessing helpers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def total_cpu(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


@dataclass
class Server:
    """One server process tree on a port."""

    name: str
    port: int
    proc: subprocess.Popen

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(name: str, command: Sequence[str], env: dict[str, str | None], port: int, log: Path, cwd: Path) -> Server:
    """Start a server and wait until its /readyz answers 200. `env` is laid over this process's environment
    (a None value removes the variable)."""
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=full, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    server = Server(name, port, proc)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; its output: {log}\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server not ready in {timeout:.0f}s; its output: {log}")


def start_redis(directory: Path) -> tuple[subprocess.Popen, int]:
    """A private redis-server on a free port (no persistence): the stack's Redis db of its own, whose
    CPU is the bench's alone."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not start")
