"""Storage of the orders example: a database adapter (SQLite or PostgreSQL) and the store.

The adapter hides the driver; the store holds the SQL. ``db.url`` picks the driver:
``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (aiosqlite) or
``postgresql://user@host:port/db`` (asyncpg).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from cordio.errors import require_extra
from cordio.observe.tracing import span
from cordio.policy import Policy, Retry
from examples.orders.models import NewOrder, Order


class Adapter(Protocol):
    """The few calls the store needs from a database driver."""

    dialect: str

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...

    async def ping(self) -> None: ...


def query_span(system: str, sql: str) -> Any:
    """A CLIENT span around one query (OpenTelemetry database conventions): named by the
    statement's first word, the parameterised SQL as ``db.query.text`` (never its
    arguments)."""
    operation = sql.split(None, 1)[0].upper() if sql.strip() else "QUERY"
    attributes = {"db.system.name": system, "db.operation.name": operation, "db.query.text": sql}
    return span(operation, kind="client", attributes=attributes)


class SqliteAdapter:
    """aiosqlite on one connection (SQLite serialises writers anyway), WAL journal."""

    dialect = "sqlite"

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteAdapter:
        aiosqlite: Any = require_extra("aiosqlite", feature="SQLite storage", extra="sqlite")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn)

    async def execute(self, sql: str, *args: Any) -> None:
        with query_span("sqlite", sql):
            async with self.lock:
                await self.conn.execute(sql, args)
                await self.conn.commit()

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with query_span("sqlite", sql):
            async with self.lock:
                cursor = await self.conn.execute(sql, args)
                rows = await cursor.fetchall()
                await self.conn.commit()
        return [dict(row) for row in rows]

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def close(self) -> None:
        await self.conn.close()


class PostgresAdapter:
    """asyncpg connection pool."""

    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, pool_size: int) -> PostgresAdapter:
        asyncpg: Any = require_extra("asyncpg", feature="PostgreSQL storage", extra="postgres")
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=10)
        return cls(pool)

    async def execute(self, sql: str, *args: Any) -> None:
        with query_span("postgresql", sql):
            await self.pool.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with query_span("postgresql", sql):
            return [dict(r) for r in await self.pool.fetch(sql, *args)]

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    def pool_sizes(self) -> dict[str, int]:
        """The connections (asyncpg): ``size``, ``idle``, ``max`` (``cordio_resource_pool``)."""
        return {
            "size": self.pool.get_size(),
            "idle": self.pool.get_idle_size(),
            "max": self.pool.get_max_size(),
        }

    async def close(self) -> None:
        await self.pool.close()


async def open_adapter(url: str, pool_size: int = 10) -> AsyncIterator[Adapter]:
    """Open the adapter ``url`` names, yield it, close it."""
    adapter: SqliteAdapter | PostgresAdapter
    if url.startswith("sqlite://"):
        adapter = await SqliteAdapter.open(url.removeprefix("sqlite://").removeprefix("/"))
    elif url.startswith(("postgresql://", "postgres://")):
        adapter = await PostgresAdapter.open(url, pool_size)
    else:
        raise ValueError(f"db.url must start with sqlite:// or postgresql://, got {url[:20]!r}")
    try:
        yield adapter
    finally:
        await adapter.close()


class OrderNotFound(LookupError):
    """No order has this id."""


class AlreadyFulfilled(Exception):
    """The order was fulfilled before."""


#: Queries are retried on connection failures; tunable under ``policies.db``.
db_policy = Policy(
    "db", retry=Retry(attempts=3, initial_delay=0.05, max_delay=0.5, on=(OSError, TimeoutError))
)


class OrderStore:
    """Orders in a relational database (one table, created if missing)."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        pg = adapter.dialect == "postgresql"
        self._p = (lambda n: f"${n}") if pg else (lambda n: "?")
        self._id = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
        self._ts = "TIMESTAMPTZ" if pg else "TEXT"

    async def create_schema(self) -> None:
        await self.adapter.execute(
            f"CREATE TABLE IF NOT EXISTS orders (id {self._id}, item TEXT NOT NULL,"
            f" quantity INTEGER NOT NULL, status TEXT NOT NULL, unit_price TEXT NOT NULL,"
            f" created_at {self._ts} NOT NULL)"
        )

    def _order(self, row: dict[str, Any]) -> Order:
        return Order.model_validate(row)

    @db_policy
    async def add(self, new: NewOrder, unit_price: Decimal) -> Order:
        p = self._p
        now = datetime.now(UTC)
        created: Any = now if self.adapter.dialect == "postgresql" else now.isoformat()
        rows = await self.adapter.fetch(
            f"INSERT INTO orders (item, quantity, status, unit_price, created_at)"
            f" VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)}) RETURNING id",
            new.item,
            new.quantity,
            "new",
            str(unit_price),
            created,
        )
        return Order(
            id=rows[0]["id"],
            item=new.item,
            quantity=new.quantity,
            unit_price=unit_price,
            created_at=now,
        )

    @db_policy
    async def fulfil(self, order_id: int) -> Order:
        """Mark an order fulfilled.

        Raises:
            OrderNotFound: no such order.
            AlreadyFulfilled: it was fulfilled before.
        """
        p = self._p
        rows = await self.adapter.fetch(
            f"UPDATE orders SET status = {p(1)} WHERE id = {p(2)} AND status = {p(3)} RETURNING id",
            "fulfilled",
            order_id,
            "new",
        )
        order = await self.get(order_id)
        if not rows:
            raise AlreadyFulfilled(f"order {order_id} was fulfilled before")
        return order

    @db_policy
    async def unfulfilled(self, older_than: float, limit: int = 100) -> Sequence[Order]:
        """Orders still new ``older_than`` seconds after they were created, oldest first."""
        p = self._p
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        since: Any = cutoff if self.adapter.dialect == "postgresql" else cutoff.isoformat()
        rows = await self.adapter.fetch(
            f"SELECT * FROM orders WHERE status = {p(1)} AND created_at < {p(2)}"
            f" ORDER BY id LIMIT {p(3)}",
            "new",
            since,
            limit,
        )
        return [self._order(r) for r in rows]

    @db_policy
    async def get(self, order_id: int) -> Order:
        rows = await self.adapter.fetch(f"SELECT * FROM orders WHERE id = {self._p(1)}", order_id)
        if not rows:
            raise OrderNotFound(f"order {order_id} does not exist")
        return self._order(rows[0])

    @db_policy
    async def list(self, limit: int, offset: int) -> Sequence[Order]:
        p = self._p
        rows = await self.adapter.fetch(
            f"SELECT * FROM orders ORDER BY id DESC LIMIT {p(1)} OFFSET {p(2)}", limit, offset
        )
        return [self._order(r) for r in rows]
