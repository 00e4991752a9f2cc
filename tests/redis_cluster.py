"""A real 3-master Redis Cluster on loopback, started for a test session (`tests/contract/conftest.py`).

Each master is a `redis-server --cluster-enabled yes` on a free port (its cluster bus, port + 10000, free
too), without persistence, in a temporary directory; `redis-cli --cluster create` assigns the 16,384 slots;
the cluster is ready when every node reports `cluster_state:ok`. `stop` terminates the processes this
module started (by their handles, nothing else) and removes the directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MASTERS = 3
START_TIMEOUT = 30.0  # seconds for the servers to answer and the cluster to agree on its slots


@dataclass
class LocalRedisCluster:
    """The processes and directory of one started cluster; `url` names one node, as the service would."""

    directory: Path
    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster() -> LocalRedisCluster:
    """Start `MASTERS` nodes and join them into one cluster; raises RuntimeError, with why, if it cannot."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: the Redis Cluster tests need it on PATH")
    cluster = LocalRedisCluster(Path(tempfile.mkdtemp(prefix="nbo-redis-cluster-")), free_ports(MASTERS))
    try:
        for port in cluster.ports:
            cluster.processes.append(_start_node(cluster.directory, port))
        deadline = time.monotonic() + START_TIMEOUT
        for port in cluster.ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG", deadline, f"redis-server on port {port} did not start")
        _create(cluster.ports)
        for port in cluster.ports:
            _wait(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"), deadline, "cluster_state never ok")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def free_ports(n: int) -> list[int]:
    """`n` ports free on 127.0.0.1 whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 55_000 and port not in ports and _free(port) and _free(port + 10_000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_node(directory: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf", "--save", "", "--appendonly", "no",
        "--dir", str(directory), "--logfile", f"redis-{port}.log",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _create(ports: list[int]) -> None:
    nodes = [f"127.0.0.1:{port}" for port in ports]
    done = subprocess.run(
        ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def _cli(port: int, *command: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=5)
    return done.stdout.strip()


def _wait(ready: Callable[[], bool], deadline: float, failure: str) -> None:
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.05)


def main() -> None:
    """`python -m tests.redis_cluster`: start a cluster for benchmarks, print its URL, stop on Ctrl-C."""
    cluster = start_cluster()
    print(cluster.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
