"""The ZeroMQ transport's admin routes, served under ``/admin/zmq`` behind the admin token
(:mod:`cordio.observe.admin`, "Access").

- ``GET /admin/zmq``: what this process runs::

      {"broker": {"endpoints": [...], "requests": int, "replies": int, "requeued": int,
                  "drops": {reason: int}, "failed": {...}, "disconnects": {...},
                  "services": [{"name", "workers", "idle", "queued"}],
                  "workers": [{"identity", "host", "service", "version", "busy",
                               "served", "expires_in"}]},
       "services": [{"service", "broker", "served", "failed", "reconnects",
                     "auth_failures", "heartbeat_interval"}],
       "processes": [{"index", "pid", "alive", "restarts", "uptime"}]}

  ``broker`` only with ``zmq.broker.enabled``, ``processes`` only with
  ``zmq.workers.auto_start``; ``services`` are the MDP workers of this app's handlers.
- ``GET /admin/zmq/workers``: the supervised worker processes (404 without a supervisor).
- ``POST /admin/zmq/workers`` with ``{"count": N}``: scale them to ``N`` (0 to
  :data:`~cordio.zmq.supervisor.MAX_PROCESSES`) and answer their list; 400 for a body that
  is not that, 404 without a supervisor. Changes need ``admin.token`` to be set.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cordio.http.problem import problem
from cordio.observe.admin import json_body

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cordio.observe.metrics import Metrics
    from cordio.transport import RunContext
    from cordio.zmq.broker import BrokerService
    from cordio.zmq.mdp import MDPWorker
    from cordio.zmq.supervisor import WorkerSupervisor

JSON = "application/json"
#: The largest body ``POST /admin/zmq/workers`` reads, in bytes.
MAX_BODY = 1024

#: Keys of :attr:`RunContext.exports` the transport's services leave for these routes.
BROKER = "zmq.broker"
SUPERVISOR = "zmq.supervisor"
WORKERS = "zmq.workers"


def routes(run: RunContext) -> list[Route]:
    """The routes; each reads what runs at the time of the request."""

    async def overview(request: Request) -> Response:
        """The broker, the app's MDP workers and the supervised processes
        ---
        summary: The broker, the app's MDP workers and the supervised processes
        responses:
          "200":
            description: The broker, the app's MDP workers and the supervised processes
            content:
              application/json:
                schema: {type: object}
        """
        body: dict[str, Any] = {}
        broker: BrokerService | None = run.exports.get(BROKER)
        if broker is not None and broker.broker is not None:
            body["broker"] = broker_view(broker)
        workers: list[MDPWorker] = run.exports.get(WORKERS, [])
        body["services"] = [worker_view(w) for w in workers]
        supervisor: WorkerSupervisor | None = run.exports.get(SUPERVISOR)
        if supervisor is not None:
            body["processes"] = supervisor.list()
        return Response(to_json(body), media_type=JSON)

    async def processes(request: Request) -> Response:
        """The supervised worker processes.
        ---
        summary: The supervised worker processes
        responses:
          "200":
            description: index, pid, alive, restarts, uptime of each
            content:
              application/json:
                schema: {type: array, items: {type: object}}
          "404":
            description: this app supervises no worker processes
        """
        supervisor: WorkerSupervisor | None = run.exports.get(SUPERVISOR)
        if supervisor is None:
            return _unsupervised()
        return Response(to_json(supervisor.list()), media_type=JSON)

    async def scale(request: Request) -> Response:
        """Scale the supervised worker processes.
        ---
        summary: Scale the supervised worker processes
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [count]
                properties:
                  count: {type: integer, minimum: 0, maximum: 1024}
        responses:
          "200":
            description: the processes now
            content:
              application/json:
                schema: {type: array, items: {type: object}}
          "400":
            description: not a count
          "404":
            description: this app supervises no worker processes
          "413":
            description: the body is too large
        """
        supervisor: WorkerSupervisor | None = run.exports.get(SUPERVISOR)
        if supervisor is None:
            return _unsupervised()
        count = await _count(request)
        if isinstance(count, Response):
            return count
        return Response(to_json(await supervisor.scale(count)), media_type=JSON)

    return [
        Route("/", overview, methods=["GET"]),
        Route("/workers", processes, methods=["GET"]),
        Route("/workers", scale, methods=["POST"]),
    ]


def _unsupervised() -> Response:
    return problem(404, "this app supervises no worker processes (zmq.workers.auto_start)")


async def _count(request: Request) -> int | Response:
    """The ``count`` of a scale request, or the 400 problem that says what is wrong."""
    from cordio.zmq.supervisor import MAX_PROCESSES

    body = await json_body(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    count = body.get("count") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or set(body) != {"count"}
        or type(count) is not int
        or not 0 <= count <= MAX_PROCESSES
    ):
        return problem(400, f'the body must be {{"count": N}} with 0 <= N <= {MAX_PROCESSES}')
    return count


def report_broker(metrics: Metrics, service: BrokerService) -> None:
    """Export the in-app broker's counts, read when scraped:
    ``cordio_zmq_broker_messages_total{outcome}`` (``request``, ``reply``, ``requeue``, and
    ``drop_<reason>``), ``cordio_zmq_broker_workers{service, state}`` (``idle``, ``busy``)
    and ``cordio_zmq_broker_queued{service}``."""

    def totals() -> list[tuple[Sequence[str], float]]:
        broker = service.broker
        if broker is None:
            return []
        rows: list[tuple[Sequence[str], float]] = [
            (("request",), broker.requests),
            (("reply",), broker.replies),
            (("requeue",), broker.requeued),
        ]
        rows += [((f"drop_{reason}",), n) for reason, n in broker.drops.items()]
        return rows

    def workers() -> list[tuple[Sequence[str], float]]:
        broker = service.broker
        if broker is None:
            return []
        rows: list[tuple[Sequence[str], float]] = []
        for s in broker.services():
            rows += [((s.name, "idle"), s.idle), ((s.name, "busy"), s.workers - s.idle)]
        return rows

    def queued() -> list[tuple[Sequence[str], float]]:
        broker = service.broker
        return [((s.name,), s.queued) for s in broker.services()] if broker else []

    metrics.report(
        "cordio_zmq_broker_messages", "MDP broker messages by outcome", ("outcome",), totals
    )
    metrics.report(
        "cordio_zmq_broker_workers",
        "MDP workers registered, by service and state",
        ("service", "state"),
        workers,
        kind="gauge",
    )
    metrics.report(
        "cordio_zmq_broker_queued",
        "Requests waiting for a worker, by service",
        ("service",),
        queued,
        kind="gauge",
    )


def broker_view(service: BrokerService) -> dict[str, Any]:
    """What ``GET /admin/zmq`` says of the in-app broker."""
    broker = service.broker
    assert broker is not None
    return {
        "endpoints": list(broker.endpoints),
        "requests": broker.requests,
        "replies": broker.replies,
        "requeued": broker.requeued,
        "drops": dict(broker.drops),
        "failed": dict(broker.failed),
        "disconnects": dict(broker.disconnects),
        "services": [asdict(s) for s in broker.services()],
        "workers": [
            {**asdict(w), "version": w.version.value, "expires_in": round(w.expires_in, 3)}
            for w in broker.workers()
        ],
    }


def worker_view(worker: MDPWorker) -> dict[str, Any]:
    """What ``GET /admin/zmq`` says of one of the app's MDP workers."""
    return {
        "service": worker.service,
        "broker": worker.broker,
        "served": worker.served,
        "failed": worker.failed,
        "reconnects": worker.reconnects,
        "auth_failures": worker.auth_failures,
        "heartbeat_interval": worker.heartbeat_interval,
    }
