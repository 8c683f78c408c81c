"""Log records in a PostgreSQL table, written in batches off the request path.

``log.postgres`` (:class:`~cordio.observe.sinks.settings.PostgresSinkSettings`) names the
database: ``dsn`` (a secret) for a connection of the sink's own, or ``resource``, the name
of an app resource holding an asyncpg pool the app already uses. The table (``table``,
default ``cordio_log``) is created when missing::

    CREATE TABLE IF NOT EXISTS cordio_log (
        id bigserial PRIMARY KEY, ts timestamptz NOT NULL, level text NOT NULL,
        logger text NOT NULL, message text NOT NULL, app text, handler text,
        trace_id text, message_id text, error text, fields jsonb, exc text)

with an index on ``ts`` and one on ``trace_id``. Each batch is one ``COPY``
(``copy_records_to_table``). Text that PostgreSQL refuses — NUL characters, lone
surrogates from undecodable bytes — is written escaped (:func:`~.queue.clean`); a line's
structured ``fields`` go to ``fields`` as JSON (values that are not JSON as their
``str``).

While the database cannot be reached the batch waits and is tried again (backing off up to
30 s) with a new connection; records keep queueing up to ``queue_size`` and are dropped and
counted beyond it (see :mod:`cordio.observe.sinks.queue`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from cordio.observe.sinks.queue import Entry, QueueSink, clean
from cordio.observe.sinks.settings import PostgresSinkSettings

COLUMNS = (
    "ts",
    "level",
    "logger",
    "message",
    "app",
    "handler",
    "trace_id",
    "message_id",
    "error",
    "fields",
    "exc",
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: str) -> list[str]:
    """The statements creating ``table`` (``name`` or ``schema.name``) and its indexes."""
    schema, _, name = table.rpartition(".")
    full = f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)
    return [
        f"CREATE TABLE IF NOT EXISTS {full} ("
        " id bigserial PRIMARY KEY, ts timestamptz NOT NULL, level text NOT NULL,"
        " logger text NOT NULL, message text NOT NULL, app text, handler text,"
        " trace_id text, message_id text, error text, fields jsonb, exc text)",
        f"CREATE INDEX IF NOT EXISTS {_quote(name + '_ts')} ON {full} (ts)",
        f"CREATE INDEX IF NOT EXISTS {_quote(name + '_trace_id')} ON {full} (trace_id)",
    ]


def _text(value: Any) -> str | None:
    return None if value is None else clean(str(value))


def _fields(fields: dict[str, Any] | None) -> str | None:
    if not fields:
        return None
    text = json.dumps(fields, default=str, ensure_ascii=False)
    if "\\u0000" in text:  # jsonb refuses the escaped NUL too
        text = json.dumps(_no_nul(json.loads(text)), ensure_ascii=False)
    return clean(text)


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def row(item: Entry) -> tuple[Any, ...]:
    """The table row of a queued record."""
    return (
        datetime.fromtimestamp(item["ts"], UTC),
        item["level"],
        _text(item["logger"]),
        _text(item["message"]) or "",
        _text(item["app"]),
        _text(item["handler"]),
        _text(item["trace_id"]),
        _text(item["message_id"]),
        _text(item["error"]),
        _fields(item["fields"]),
        _text(item["exc"]),
    )


class PostgresSink(QueueSink):
    """Writes queued records to a PostgreSQL table.

    Args:
        settings: ``log.postgres``.
        pool: an asyncpg pool of the app (``log.postgres.resource``); default: a
            connection of the sink's own to ``settings.dsn``.
    """

    kind: ClassVar[str] = "log.postgres"

    def __init__(self, settings: PostgresSinkSettings, pool: Any = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.pg = settings
        self.pool = pool
        self._conn: Any = None
        self._ready = False
        schema, _, name = settings.table.rpartition(".")
        self._schema = schema or None
        self._name = name

    async def open(self) -> None:
        await self._prepare()

    async def _prepare(self) -> None:
        if self._ready:
            return
        async with self._connection() as conn:
            import asyncpg

            for statement in create_table_sql(self.pg.table):
                try:
                    await conn.execute(statement)
                except (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
                    pass  # another process created it at the same moment
        self._ready = True

    def _connection(self) -> Any:
        if self.pool is not None:
            return self.pool.acquire()
        return _Own(self)

    async def write(self, batch: list[Entry]) -> int:
        await self._prepare()
        async with self._connection() as conn:
            await conn.copy_records_to_table(
                self._name,
                schema_name=self._schema,
                columns=COLUMNS,
                records=[row(item) for item in batch],
            )
        return 0

    def retryable(self, exc: BaseException) -> bool:
        import asyncpg

        return isinstance(
            exc,
            OSError
            | TimeoutError
            | asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError,
        )

    async def close_destination(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(timeout=2)


class _Own:
    """The sink's own connection as a context manager: (re)connects when there is none,
    and forgets a connection a failure may have broken."""

    def __init__(self, sink: PostgresSink) -> None:
        self.sink = sink

    async def __aenter__(self) -> Any:
        sink = self.sink
        if sink._conn is None or sink._conn.is_closed():
            import asyncpg

            dsn = sink.pg.dsn.get_secret_value() if sink.pg.dsn is not None else None
            sink._conn = await asyncpg.connect(dsn, timeout=sink.pg.write_timeout)
        return sink._conn

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> None:
        broken = isinstance(exc, asyncio.CancelledError) or self.sink.retryable(exc)
        if exc is not None and broken:
            conn, self.sink._conn = self.sink._conn, None
            if conn is not None:
                conn.terminate()
