"""What a running app is doing, for operators: its handlers, tasks, threads and loggers.

Served by the admin surface (:mod:`cordio.observe.admin`) under ``/admin``, behind the admin
token:

- ``GET /admin/handlers``: every handler of every transport — ``name``, ``transport``,
  what it is bound to (``binding``: the transport's details, a route's path and methods, a
  consumer's source, a timer's schedule, a ZeroMQ service), and with metrics on ``calls``,
  ``errors``, ``in_flight``, ``p50`` and ``p99`` (seconds, estimated from the latency
  histogram's buckets by linear interpolation, as PromQL's ``histogram_quantile`` does).
- ``GET /admin/tasks``: the event loop's asyncio tasks — ``name``, ``coroutine``
  (qualified name), ``state``; ``?stacks=1`` adds each one's stack
  (``asyncio.Task.get_stack``).
- ``GET /admin/threads``: the process's threads — ``name``, ``ident``, ``native_id``,
  ``daemon``, ``alive``; ``?stacks=1`` adds each one's stack (``sys._current_frames``).
- ``GET /admin/policies``: the app's named policies: a circuit breaker's state, calls and
  failures in its window and rejections; a bulkhead's running, waiting and rejected calls;
  the other parts' settings.
- ``GET /admin/loggers``: each logger's configured and effective level;
  ``POST /admin/loggers/{name}`` with ``{"level": "DEBUG"}`` (or ``null`` to inherit)
  changes one at run time (``root`` is the root logger).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cordio.observe.admin import json_body

if TYPE_CHECKING:
    from cordio.transport import RunContext

JSON = "application/json"
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")
#: The largest body ``POST /admin/loggers/{name}`` reads, in bytes.
MAX_BODY = 1024
#: Frames shown per stack.
STACK_LIMIT = 30

Endpoint = Callable[[Request], Any]


def routes(run: RunContext) -> list[Route]:
    """``/handlers``, ``/tasks``, ``/threads``, ``/loggers`` and ``/loggers/{name}``."""

    async def handlers(request: Request) -> Response:
        """Every handler with its calls, errors and latency.
        ---
        summary: Every handler with its calls, errors and latency
        responses:
          "200":
            description: Every handler with its calls, errors and latency
            content:
              application/json:
                schema: {type: array, items: {type: object}}
        """
        return _json(handler_rows(run))

    async def tasks(request: Request) -> Response:
        """The event loop's tasks.
        ---
        summary: The event loop's tasks
        parameters:
          - name: stacks
            in: query
            required: false
            schema: {type: string, enum: ["0", "1", "true", "false", "yes", "no"]}
        responses:
          "200":
            description: The event loop's tasks
            content:
              application/json:
                schema: {type: array, items: {type: object}}
          "400":
            description: stacks is not one of its values
        """
        stacks = _stacks(request)
        if isinstance(stacks, Response):
            return stacks
        return _json(task_rows(asyncio.all_tasks(), stacks=stacks))

    async def threads(request: Request) -> Response:
        """The process's threads.
        ---
        summary: The process's threads
        parameters:
          - name: stacks
            in: query
            required: false
            schema: {type: string, enum: ["0", "1", "true", "false", "yes", "no"]}
        responses:
          "200":
            description: The process's threads
            content:
              application/json:
                schema: {type: array, items: {type: object}}
          "400":
            description: stacks is not one of its values
        """
        stacks = _stacks(request)
        if isinstance(stacks, Response):
            return stacks
        return _json(thread_rows(threading.enumerate(), stacks=stacks))

    async def loggers(request: Request) -> Response:
        """Logger levels.
        ---
        summary: Logger levels
        responses:
          "200":
            description: Logger levels
            content:
              application/json:
                schema: {type: object}
        """
        return _json({"levels": list(LEVELS), "loggers": logger_rows()})

    async def policies(request: Request) -> Response:
        """The app's named policies.
        ---
        summary: The app's named policies
        responses:
          "200":
            description: The app's named policies
            content:
              application/json:
                schema: {type: object}
        """
        return _json(policy_rows(run.policies))

    async def set_level(request: Request) -> Response:
        """Change a logger's level at run time.
        ---
        summary: Change a logger's level
        parameters:
          - name: name
            in: path
            required: true
            schema: {type: string}
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [level]
                properties:
                  level:
                    enum: [CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET, null]
        responses:
          "200":
            description: the logger's levels now
            content:
              application/json:
                schema: {type: object}
          "400":
            description: not a level
          "404":
            description: no such logger
          "413":
            description: the body is too large
        """
        return await _set_level(request)

    return [
        Route("/handlers", handlers, methods=["GET"]),
        Route("/tasks", tasks, methods=["GET"]),
        Route("/threads", threads, methods=["GET"]),
        Route("/loggers", loggers, methods=["GET"]),
        Route("/policies", policies, methods=["GET"]),
        Route("/loggers/{name:str}", set_level, methods=["POST"]),
    ]


def _json(body: Any) -> Response:
    return Response(to_json(body, fallback=str), media_type=JSON)


#: The values ``?stacks=`` takes: yes, then no.
STACKS = (("1", "true", "yes"), ("0", "false", "no"))


def _stacks(request: Request) -> bool | Response:
    """Whether ``?stacks=`` asks for stacks, or the 400 problem for a value it cannot be."""
    from cordio.http.problem import problem

    given = request.query_params.getlist("stacks")
    if not given:
        return False
    if len(given) == 1 and given[0] in STACKS[0]:
        return True
    if len(given) == 1 and given[0] in STACKS[1]:
        return False
    return problem(400, f"stacks is one of {[*STACKS[0], *STACKS[1]]}, once")


# -- handlers -------------------------------------------------------------------------------


def handler_rows(run: RunContext) -> list[dict[str, Any]]:
    """One row per handler of the plan, with its metrics when measured."""
    measured = _handler_samples(run)
    rows = []
    for spec in run.plan.handlers:
        row: dict[str, Any] = {
            "name": spec.name,
            "transport": spec.transport,
            "binding": _binding(spec.meta),
        }
        found = measured.get((spec.transport, spec.name))
        if found is not None:
            row.update(found)
        rows.append(row)
    return rows


def _binding(meta: Any) -> dict[str, Any]:
    """A transport's details of a handler, as JSON-able values."""
    if dataclasses.is_dataclass(meta) and not isinstance(meta, type):
        fields = {f.name: getattr(meta, f.name) for f in dataclasses.fields(meta)}
    else:
        fields = dict(getattr(meta, "__dict__", {}))
    return {k: _plain(v) for k, v in fields.items() if not k.startswith("_") and v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _handler_samples(run: RunContext) -> dict[tuple[str, str], dict[str, Any]]:
    metrics = run.metrics
    if metrics is None:
        return {}
    families = metrics.families()
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels["transport"], labels["handler"])
        return rows.setdefault(key, {"calls": 0, "errors": 0, "in_flight": 0})

    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for family in (
        *families.calls.collect(),
        *families.errors.collect(),
        *families.in_flight.collect(),
        *families.duration.collect(),
    ):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "cordio_handler_calls_total":
                row(labels)["calls"] = int(sample.value)
            elif sample.name == "cordio_handler_errors_total":
                row(labels)["errors"] += int(sample.value)
            elif sample.name == "cordio_handler_in_flight":
                row(labels)["in_flight"] = int(sample.value)
            elif sample.name == "cordio_handler_duration_seconds_bucket":
                key = (labels["transport"], labels["handler"])
                buckets.setdefault(key, []).append((float(labels["le"]), sample.value))
    for key, found in buckets.items():
        found.sort()
        target = rows.setdefault(key, {"calls": 0, "errors": 0, "in_flight": 0})
        target["p50"] = quantile(0.5, found)
        target["p99"] = quantile(0.99, found)
    return rows


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as cumulative ``(upper bound, count)``
    pairs, increasing, the last ``+Inf``: linear interpolation inside the bucket holding it
    (Prometheus ``histogram_quantile``); the highest finite bound when it falls in the
    ``+Inf`` bucket; ``None`` without observations."""
    pairs = list(buckets)
    if not pairs or pairs[-1][1] == 0:
        return None
    rank = q * pairs[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound  # pragma: no cover - the +Inf bucket holds every observation


# -- policies -----------------------------------------------------------------------------


def policy_rows(policies: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {part: state}}`` of the app's named policies: a breaker's and a bulkhead's
    :meth:`snapshot` (state, failures in the window, rejections; occupancy), the other
    parts' settings."""
    rows: dict[str, dict[str, Any]] = {}
    for name, policy in policies.items():
        parts: dict[str, Any] = {}
        for kind, part in getattr(policy, "parts", {}).items():
            snapshot = getattr(part, "snapshot", None)
            if callable(snapshot):
                parts[kind] = snapshot()
            else:
                settings = getattr(part, "settings", None)
                parts[kind] = settings.model_dump() if settings is not None else {}
        rows[name] = parts
    return rows


# -- tasks and threads --------------------------------------------------------------------


def task_rows(tasks: Iterable[asyncio.Task[Any]], *, stacks: bool) -> list[dict[str, Any]]:
    """One row per task, sorted by name."""
    rows = []
    for task in tasks:
        coro = task.get_coro()
        row: dict[str, Any] = {
            "name": task.get_name(),
            "coroutine": getattr(coro, "__qualname__", type(coro).__name__),
            "state": "cancelling" if task.cancelling() else "running",
        }
        if stacks:
            frames = task.get_stack(limit=STACK_LIMIT)
            row["stack"] = _format(traceback.StackSummary.extract((f, f.f_lineno) for f in frames))
        rows.append(row)
    rows.sort(key=lambda r: str(r["name"]))
    return rows


def thread_rows(threads: Iterable[threading.Thread], *, stacks: bool) -> list[dict[str, Any]]:
    """One row per thread, the main thread first."""
    frames = sys._current_frames() if stacks else {}
    rows = []
    for thread in threads:
        row: dict[str, Any] = {
            "name": thread.name,
            "ident": thread.ident,
            "native_id": thread.native_id,
            "daemon": thread.daemon,
            "alive": thread.is_alive(),
        }
        if stacks and thread.ident in frames:
            summary = traceback.extract_stack(frames[thread.ident], limit=STACK_LIMIT)
            row["stack"] = _format(summary)
        rows.append(row)
    rows.sort(key=lambda r: (r["name"] != "MainThread", str(r["name"])))
    return rows


def _format(summary: traceback.StackSummary) -> list[str]:
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in summary]


# -- loggers ------------------------------------------------------------------------------


def logger_rows() -> dict[str, dict[str, str | None]]:
    """``{name: {"configured": level or None, "effective": level}}``, ``root`` first."""
    root = logging.getLogger()
    rows: dict[str, dict[str, str | None]] = {"root": _levels(root)}
    for name in sorted(logging.root.manager.loggerDict):
        found = logging.root.manager.loggerDict[name]
        if isinstance(found, logging.Logger):
            rows[name] = _levels(found)
    return rows


def _levels(logger: logging.Logger) -> dict[str, str | None]:
    configured = logging.getLevelName(logger.level) if logger.level else None
    return {"configured": configured, "effective": logging.getLevelName(logger.getEffectiveLevel())}


async def _set_level(request: Request) -> Response:
    from cordio.http.problem import problem

    name = request.path_params["name"]
    body = await json_body(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    level = body.get("level", "") if isinstance(body, dict) else ""
    if not isinstance(body, dict) or set(body) != {"level"} or level not in (*LEVELS, None):
        return problem(400, f'the body must be {{"level": L}}, L one of {list(LEVELS)} or null')
    if name != "root" and name not in logging.root.manager.loggerDict:
        return problem(404, f"no logger {name!r}")
    logger = logging.getLogger() if name == "root" else logging.getLogger(name)
    if level is None and name == "root":
        return problem(400, "the root logger has no parent to inherit a level from")
    logger.setLevel(logging.NOTSET if level is None else level)
    logging.getLogger("cordio.admin").warning(
        "logger %s set to %s through the admin surface", name, level or "inherit"
    )
    return _json({name: _levels(logger)})
