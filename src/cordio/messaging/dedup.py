"""De-duplication stores: make an at-least-once consumer effectively-once.

A consumer with ``dedup=True`` records, per handler and message id, that the message was
handled. The record has two states:

- ``processing`` — claimed by one consumer for ``lease`` seconds while its handler runs; a
  copy delivered meanwhile (to another replica) is delivered again later, not run twice at
  once. A consumer that dies leaves a claim that expires after the lease, so the message is
  never lost.
- ``done`` — the handler returned; copies delivered within ``ttl`` seconds are acked
  without running the handler.

A handler that fails releases its claim, so the redelivery runs it again. The guarantee is
as strong as the store: with the in-memory store, a duplicate is caught only within one
process; Redis and PostgreSQL share the record between replicas.

Stores, chosen by ``dedup.url``: ``memory://`` (default), ``redis://host:6379/0``
(``cordio[redis]``: ``SET NX PX``), ``postgresql://...`` (``cordio[postgres]``: one table,
``INSERT ... ON CONFLICT``).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from pydantic import Field

from cordio.errors import require_extra
from cordio.messaging.settings import url_scheme
from cordio.settings import Settings

Claim = Literal["claimed", "done", "busy"]


class DedupSettings(Settings, section="dedup"):
    """The ``dedup`` section.

    Attributes:
        url: ``memory://`` (default), ``redis://host:6379/0`` or
            ``postgresql://user@host/db``.
        ttl: seconds a handled message id is remembered (default 86400, one day).
        lease: seconds a claim lasts while a handler runs (default 300); longer than your
            slowest handler.
        max_entries: memory store: ids kept at most, oldest dropped first (default 100000).
        table: PostgreSQL table name (default ``cordio_dedup``).
    """

    url: str = "memory://"
    ttl: float = Field(86400.0, gt=0)
    lease: float = Field(300.0, gt=0)
    max_entries: int = Field(100_000, ge=1)
    table: str = Field("cordio_dedup", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    def model_post_init(self, context: Any, /) -> None:
        if url_scheme(self.url) not in STORES:
            schemes = [f"{scheme}://" for scheme in STORES]
            raise ValueError(
                f"unsupported dedup url scheme {self.url.split(':', 1)[0]!r}; use"
                f" {', '.join(schemes[:-1])} or {schemes[-1]}"
            )


class DedupStore(Protocol):
    """Where handled message ids are recorded (module docstring)."""

    async def claim(self, key: str, lease: float) -> Claim:
        """Claim ``key`` for ``lease`` seconds: ``claimed`` (run the handler), ``done``
        (handled before: skip it) or ``busy`` (another consumer holds an unexpired claim)."""

    async def complete(self, key: str, ttl: float) -> None:
        """Record ``key`` as handled for ``ttl`` seconds."""

    async def release(self, key: str) -> None:
        """Drop the claim on ``key`` (its handler failed; the redelivery runs it again)."""


class MemoryDedup:
    """In-process store: a dict with expiry times, at most ``max_entries`` ids.

    Args:
        max_entries: ids kept at most; the oldest are dropped first.
        clock: monotonic seconds (for tests).
    """

    def __init__(self, max_entries: int = 100_000, clock: Any = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def claim(self, key: str, lease: float) -> Claim:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return "done" if entry[0] == "done" else "busy"
        self._entries[key] = ("processing", now + lease)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return "claimed"

    async def complete(self, key: str, ttl: float) -> None:
        self._entries[key] = ("done", self._clock() + ttl)
        self._entries.move_to_end(key)

    async def release(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == "processing":
            del self._entries[key]


class RedisDedup:
    """Redis store: ``SET key processing NX PX lease``, then ``SET key done PX ttl``.

    Args:
        client: a ``redis.asyncio.Redis``.
        prefix: key prefix (default ``cordio:dedup:``).
    """

    def __init__(self, client: Any, prefix: str = "cordio:dedup:") -> None:
        self.client = client
        self.prefix = prefix

    async def claim(self, key: str, lease: float) -> Claim:
        name = self.prefix + key
        if await self.client.set(name, b"processing", nx=True, px=int(lease * 1000)):
            return "claimed"
        state = await self.client.get(name)
        if state is None:  # expired between the two calls: try once more
            ok = await self.client.set(name, b"processing", nx=True, px=int(lease * 1000))
            return "claimed" if ok else "busy"
        return "done" if state == b"done" else "busy"

    async def complete(self, key: str, ttl: float) -> None:
        await self.client.set(self.prefix + key, b"done", px=int(ttl * 1000))

    async def release(self, key: str) -> None:
        name = self.prefix + key
        if await self.client.get(name) == b"processing":
            await self.client.delete(name)


class PostgresDedup:
    """PostgreSQL store: one row per id (``key``, ``state``, ``expires_at``).

    Args:
        pool: an ``asyncpg`` pool.
        table: the table's name (created when missing).
    """

    def __init__(self, pool: Any, table: str = "cordio_dedup") -> None:
        self.pool = pool
        self.table = table

    async def create_table(self) -> None:
        await self.pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key text PRIMARY KEY,"
            " state text NOT NULL, expires_at timestamptz NOT NULL)"
        )

    async def claim(self, key: str, lease: float) -> Claim:
        row = await self.pool.fetchrow(
            f"INSERT INTO {self.table} AS d (key, state, expires_at)"
            " VALUES ($1, 'processing', now() + make_interval(secs => $2))"
            " ON CONFLICT (key) DO UPDATE SET state = 'processing',"
            " expires_at = EXCLUDED.expires_at WHERE d.expires_at <= now()"
            " RETURNING state",
            key,
            lease,
        )
        if row is not None:
            return "claimed"
        state = await self.pool.fetchval(
            f"SELECT state FROM {self.table} WHERE key = $1 AND expires_at > now()", key
        )
        return "done" if state == "done" else "busy"

    async def complete(self, key: str, ttl: float) -> None:
        await self.pool.execute(
            f"UPDATE {self.table} SET state = 'done',"
            " expires_at = now() + make_interval(secs => $2) WHERE key = $1",
            key,
            ttl,
        )

    async def release(self, key: str) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.table} WHERE key = $1 AND state = 'processing'", key
        )


@contextlib.asynccontextmanager
async def _memory_store(cfg: DedupSettings) -> AsyncIterator[DedupStore]:
    yield MemoryDedup(cfg.max_entries)


@contextlib.asynccontextmanager
async def _redis_store(cfg: DedupSettings) -> AsyncIterator[DedupStore]:
    redis: Any = require_extra("redis.asyncio", feature="Redis de-duplication", extra="redis")
    client = redis.from_url(cfg.url, socket_connect_timeout=10)
    await client.ping()
    try:
        yield RedisDedup(client)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _postgres_store(cfg: DedupSettings) -> AsyncIterator[DedupStore]:
    asyncpg: Any = require_extra("asyncpg", feature="PostgreSQL de-duplication", extra="postgres")
    pool = await asyncpg.create_pool(cfg.url, min_size=1, max_size=4, timeout=10)
    try:
        store = PostgresDedup(pool, cfg.table)
        await store.create_table()
        yield store
    finally:
        await pool.close()


#: Each ``dedup.url`` scheme and the store it opens (with its client library, an extra).
STORES: dict[str, Callable[[DedupSettings], AbstractAsyncContextManager[DedupStore]]] = {
    "memory": _memory_store,
    "redis": _redis_store,
    "rediss": _redis_store,
    "postgresql": _postgres_store,
}


async def dedup_store(cfg: DedupSettings) -> AsyncIterator[DedupStore]:
    """The store ``dedup.url`` names (its scheme in :data:`STORES`), open while the app
    runs."""
    async with STORES.get(url_scheme(cfg.url), _memory_store)(cfg) as store:
        yield store
