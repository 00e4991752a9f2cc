"""The Redis client, from a URL: one Redis server, or a Redis Cluster (`redis+cluster://host:port`).

Every Redis adapter (customer cache, budgets, locks, the write-behind stream and its drainer, the bulk load)
takes the client this module builds, and works unchanged on both: each Lua script and each MULTI touches
keys of one hash tag only (a customer, a budget key, a stream), so each runs in one Cluster slot.

- `redis://host:port/db` (or `rediss://`, `unix://`): `redis.asyncio.Redis` on a `BlockingConnectionPool`,
  so that under a spike requests wait up to `timeout` seconds for a connection instead of opening hundreds.
- `redis+cluster://host:port` (or `rediss+cluster://`): `BlockingRedisCluster`, a
  `redis.asyncio.cluster.RedisCluster` that discovers the other nodes from the one named (any node will
  do) and routes each command to the node of its key's slot. redis-py's async cluster client has no
  blocking pool: past `max_connections` to a node it raises `MaxConnectionsError` at once (redis-py
  issues #2522, #3135), so the subclass bounds the commands and pipelines in flight by a semaphore of
  the same size: callers queue, as they do on the single server's pool.

>>> client = redis_client("redis+cluster://10.0.0.5:7000")   # doctest: +SKIP
>>> cache = RedisCustomerCache(client, feature_names=names)    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError

RedisClient: TypeAlias = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
ScriptCall = tuple[Sequence[Any], Sequence[Any]]  # (keys, args) of one EVALSHA
# Set while a pipeline holds an in-flight place: redis-py resends a redirected (MOVED/ASK) pipeline command
# through the client, and that command must not queue for a second place (all places held by pipelines
# waiting for one more would never be released).
_HOLDS_PLACE: ContextVar[bool] = ContextVar("nbo_cluster_holds_place", default=False)


class BlockingRedisCluster(RedisCluster):
    """A `RedisCluster` whose callers wait for a free connection instead of getting `MaxConnectionsError`.

    At most `max_connections` commands or pipelines are in flight through this client at once, so no
    node ever needs more than `max_connections` connections (the limit redis-py applies per node).
    """

    def __init__(self, *args: Any, max_connections: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._in_flight = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if _HOLDS_PLACE.get():
            return await super().execute_command(*args, **kwargs)
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py, with its message
        return _BlockingClusterPipeline(self, transaction)


class _BlockingClusterPipeline(ClusterPipeline):
    """A cluster pipeline that takes one of its client's in-flight places while it executes."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, BlockingRedisCluster)
        async with client._in_flight:
            holds = _HOLDS_PLACE.set(True)
            try:
                return await super().execute(raise_on_error, allow_redirections)
            finally:
                _HOLDS_PLACE.reset(holds)


def redis_client(
    url: str,
    *,
    max_connections: int = 64,
    timeout: float = 5.0,
    socket_connect_timeout: float | None = None,
    socket_timeout: float | None = None,
) -> RedisClient:
    """The client for `url`: a cluster client for `redis+cluster://`, else a single-server client.

    `max_connections` bounds the connections (per node on a cluster); a caller waits at most `timeout`
    seconds for one on a single server (on a cluster, it waits its turn). The socket timeouts bound each
    call (None: redis-py's defaults). Responses are bytes (`decode_responses=False`), as every adapter here
    expects.

    >>> type(redis_client("redis://127.0.0.1:6379/0")).__name__
    'Redis'
    >>> type(redis_client("redis+cluster://127.0.0.1:7000")).__name__
    'BlockingRedisCluster'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a Redis URL (no scheme): {url!r}")
    sockets = {"socket_connect_timeout": socket_connect_timeout, "socket_timeout": socket_timeout}
    if scheme in CLUSTER_SCHEMES:
        return _cluster_client(f"{CLUSTER_SCHEMES[scheme]}://{rest}", max_connections, **sockets)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **sockets)
    return Redis(connection_pool=pool)


def _cluster_client(url: str, max_connections: int, **sockets: float | None) -> BlockingRedisCluster:
    path = url.partition("://")[2].partition("/")[2].partition("?")[0]
    if path not in ("", "0"):
        # A cluster has database 0 only: a /1 would silently mean 0 everywhere else in the URL's life.
        raise ValueError(f"a Redis Cluster has only database 0, the URL names /{path}")
    return BlockingRedisCluster.from_url(
        url, max_connections=max_connections, decode_responses=False, **sockets
    )


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def decodes_responses(client: RedisClient) -> bool:
    """Whether the client decodes replies to str (the adapters need bytes: their values are orjson)."""
    return bool(client.get_encoder().decode_responses)


async def evalsha_pipelined(client: RedisClient, script: str, sha: str, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run one script for each (keys, args) in one pipeline (no transaction); its results, in order.

    EVALSHA by hand: redis-py loads a pipeline's scripts first only on a single server, never on a
    cluster (and asks SCRIPT EXISTS every time, a second round trip). A node that does not know the script
    (a fresh node, a restart, a failover) answers NOSCRIPT: the script is loaded on every primary and those
    calls run again. Any other error is raised, the first one.
    """
    results = await _evalsha(client, sha, calls)
    redo = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if redo:
        await client.script_load(script)
        for i, result in zip(redo, await _evalsha(client, sha, [calls[i] for i in redo]), strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def _evalsha(client: RedisClient, sha: str, calls: Sequence[ScriptCall]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            queue_evalsha(pipe, sha, keys, args)
        return await pipe.execute(raise_on_error=False)


def queue_evalsha(pipe: Any, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> None:
    """Queue one EVALSHA in a pipeline of either client.

    redis-py's cluster pipeline refuses its `evalsha` method (it cannot load scripts per node), yet routes
    an EVALSHA command by its keys' slot like any other: the callers here load scripts themselves on
    NOSCRIPT, so the command is queued as such.
    """
    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
