"""The Majordomo broker: one ROUTER socket, services by name, MDP/0.1 and MDP/0.2 at once.

A client sends a REQUEST for a service; the broker queues it on that service and hands it to
the service's worker that has been idle longest; the worker's reply goes back to the client
(RFC 7 / RFC 18, "Overall Topology"). Every message's version is read from its own header
(:mod:`cordio.zmq.mdp.frames`), so MDP/0.1 and MDP/0.2 clients and workers mix freely: a
reply reaches its client in the client's version (an MDP/0.1 client, which takes a single
REPLY, gets the FINAL of an MDP/0.2 worker; its PARTIALs are dropped and counted).

The rules, with the RFC section each comes from:

- **Workers** register with READY, one service each (RFC 7, "Opening and Closing a
  Connection"). A valid but unexpected command from a worker — a second READY, a REQUEST, a
  reply with no request, HEARTBEAT or a reply from a peer that never sent READY (or was
  removed) — is answered with DISCONNECT and the worker is removed ("The broker MUST respond
  to any valid but unexpected command by sending DISCONNECT"). A worker that registers a
  service under ``mmi.`` is disconnected (RFC 8, "Namespace"). DISCONNECT from a worker
  removes it, idle or busy; nothing more is sent to it.
- **Malformed messages** are dropped and counted under their reason (``drops``); a
  registered worker that sends one is removed ("SHOULD respond to invalid messages by
  dropping them and treating that peer as invalid"). Nothing a peer sends stops the broker.
- **Heartbeats** (RFC 7, "Heartbeating"): every command from a worker counts as a heartbeat;
  a worker that sends nothing for ``heartbeat_interval * heartbeat_liveness`` seconds is
  removed, idle or busy, every expired one at each check. The broker sends HEARTBEAT to each
  worker it has sent nothing for ``heartbeat_interval`` seconds ("Peers SHOULD NOT send
  HEARTBEAT commands while also sending other commands"); a busy worker is heartbeated too,
  so a worker in a long request still knows the broker is there.
- **A request held by a worker that is removed** (expired, disconnected, expelled) goes back
  to the front of its queue once; the second time, or when MDP/0.2 PARTIALs of it already
  reached the client, it fails with an error reply ``502``.
- **Queues**: requests wait per service while no worker is free, also for services no worker
  has registered yet (RFC 7: "The broker SHOULD queue client requests for which no service
  has been registered and SHOULD expire these requests"), at most ``max_queued`` per
  service (then an error reply ``503``) and for ``request_ttl`` seconds (then ``504``).
  Error replies follow :mod:`cordio.zmq.mdp.errors`. A service with no worker and no request
  is forgotten.
- **Dispatch** goes to the service's longest-idle worker (RFC 7: "least recently used").
- **MMI** (RFC 8): ``mmi.service`` with a service name answers ``200`` when at least one
  worker of that service is registered (idle or busy), ``404`` otherwise; any other
  ``mmi.*`` answers ``501``.
- **Sending** is never blocking: the socket has ``ROUTER_MANDATORY``, so a message for a
  peer that is gone fails with *host unreachable* — dropped and counted at once — and one
  for a peer whose pipe is at its high-water mark fails with *try again*: it waits in that
  peer's backlog (order kept) for up to ``send_timeout`` seconds without progress, then the
  backlog is dropped and counted as ``backpressure``. The socket is read and written
  through :class:`~cordio.zmq.mdp._io.SocketIO` (non-blocking calls woken by the event
  loop's reader on ``ZMQ_FD``), not through ``zmq.asyncio``'s Futures.

Counters (``collections.Counter`` attributes, by reason):

- ``drops``: messages not delivered: each :data:`~cordio.zmq.mdp.errors.MALFORMED_REASONS`,
  ``too_large`` (frames together over ``max_message_size``), ``reply_from_unknown_worker``,
  ``unexpected_reply``, ``partial_to_v01_client``, ``client_unreachable``,
  ``worker_unreachable``, ``backpressure``, ``send_error``, ``broker_stopped``;
- ``failed``: requests answered with an error reply: ``queue_full``, ``expired``,
  ``worker_lost``;
- ``disconnects``: workers removed: ``disconnect`` (the worker said so), ``expired``,
  ``unexpected_command``, ``malformed``, ``mmi_namespace``, ``unknown_worker`` (a command
  from a peer that is not registered), ``unreachable``, ``backpressure``, ``stopping``.

A single frame over ``max_message_size`` never reaches the broker: libzmq closes that
connection (``ZMQ_MAXMSGSIZE``) and the peer's socket reconnects; it is not counted.

**CURVE** (``curve=``, :mod:`cordio.zmq.curve`): the broker is a CURVE server (RFC 26)
and only workers and clients whose public key is in the authorized directory get in (ZAP,
RFC 27). :meth:`MDPBroker.start` starts the ZAP handler on the broker's context *before*
the socket binds (libzmq lets every key in while no handler is bound), on a context of the
broker's own unless one is given (a context has one handler, which answers for every CURVE
socket of it), and sets the CURVE options before the bind; :meth:`MDPBroker.stop` closes
the socket, then stops the handler. Refusals are counted in ``authenticator.refused``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from cordio.clock import Clock, SystemClock
from cordio.zmq.curve import CurveServerConfig, configure_server
from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._zmq import bind, zmq
from cordio.zmq.mdp._zmq import context as _context
from cordio.zmq.mdp._zmq import endpoints as _endpoints
from cordio.zmq.mdp.broker_state import (
    BrokerOptions,
    ServiceInfo,
    WorkerInfo,
    _Pending,
    _Service,
    _Worker,
)
from cordio.zmq.mdp.errors import EXPIRED, QUEUE_FULL, WORKER_LOST, MalformedMessage, error_body
from cordio.zmq.mdp.frames import (
    MMI_PREFIX,
    ClientReply,
    ClientRequest,
    Disconnect,
    Heartbeat,
    Ready,
    Reply,
    Request,
    Version,
    WorkerCommand,
    parse,
)
from cordio.zmq.mdp.router import RouterSender
from cordio.zmq.zap import ZapAuthenticator

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("cordio.zmq.mdp.broker")

#: Messages read in one go before the loop lets other tasks run.
BATCH = 256
#: Seconds between two warnings about drops for one reason (the rest are logged at DEBUG).
WARN_EVERY = 10.0


class MDPBroker:
    """A Majordomo broker (MDP/0.1 and MDP/0.2, with MMI) on a pyzmq asyncio ROUTER socket.

    A service: ``await start()`` binds and serves, ``await stop()`` disconnects the workers
    and closes the socket::

        broker = MDPBroker("tcp://127.0.0.1:5555", BrokerOptions(request_ttl=10))
        await broker.start()
        ...
        await broker.stop()

    The module docstring lists the protocol rules and the counters.

    Args:
        bind: one endpoint or several (``tcp://0.0.0.0:5555``, ``tcp://127.0.0.1:*`` for a
            free port, ``ipc:///run/broker.sock``, ``inproc://name``).
        options: heartbeats, limits and timeouts (default :class:`BrokerOptions`).
        context: the pyzmq asyncio context (default: the process's shared one;
            ``inproc://`` peers must use the same; with ``curve``, a new context of the
            broker's own, see :attr:`context`).
        clock: what heartbeats, expiry and ``request_ttl`` read (default: the system's).
        curve: CURVE keys and authorized clients
            (:class:`~cordio.zmq.curve.CurveServerConfig`); default none, plain ZMTP.

    Attributes:
        endpoints: the bound endpoints, as libzmq resolved them (the port of ``*``), after
            :meth:`start`.
        drops, failed, disconnects: counters by reason (module docstring).
        requests: client requests received (MMI included).
        replies: final replies passed to the socket or to a slow peer's backlog (those
            dropped from a backlog are counted in ``drops`` too).
        requeued: requests put back in their queue after their worker was lost.
        authenticator: with ``curve``, the running ZAP handler
            (:class:`~cordio.zmq.zap.ZapAuthenticator`: ``accepted``, ``refused`` by
            reason, ``authorized.keys``), after :meth:`start`; else ``None``.

    Raises:
        ValueError: no endpoint, or one that is not a ZeroMQ endpoint.
    """

    def __init__(
        self,
        bind: str | Sequence[str],
        options: BrokerOptions | None = None,
        *,
        context: zmq.asyncio.Context | None = None,
        clock: Clock | None = None,
        curve: CurveServerConfig | None = None,
    ) -> None:
        self.bind = _endpoints(bind)
        self.options = options or BrokerOptions()
        self.curve = curve
        self.authenticator: ZapAuthenticator | None = None
        self.clock: Clock = clock or SystemClock()
        self.endpoints: list[str] = []
        self.drops: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.disconnects: collections.Counter[str] = collections.Counter()
        self.requests = self.replies = self.requeued = 0
        self._context = context
        self._own_context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._io: SocketIO | None = None
        self._services: dict[bytes, _Service] = {}
        self._workers: dict[bytes, _Worker] = {}
        self._sender: RouterSender | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._warned: dict[str, float] = {}

    def __repr__(self) -> str:
        where = ", ".join(self.endpoints or self.bind)
        return f"<MDPBroker {where} workers={len(self._workers)}>"

    @property
    def context(self) -> zmq.asyncio.Context:
        """The context of the broker's socket: the one given, else the process's shared
        one, or with ``curve`` the broker's own while it runs (``inproc://`` peers need
        it)."""
        if self._own_context is not None:
            return self._own_context
        return _context(self._context)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every endpoint and start serving; with ``curve``, start the ZAP handler
        first.

        Raises:
            OSError: an endpoint cannot be bound (bad address, or in use for more than
                :data:`BIND_RETRY` seconds); nothing stays bound.
            RuntimeError: the broker is running already, or (``curve``) the context given
                has a ZAP handler already.
        """
        if self._socket is not None:
            raise RuntimeError(f"{self!r} is running already")
        options = self.options
        context = _context(self._context)
        if self.curve is not None:
            if self._context is None:
                context = self._own_context = zmq.asyncio.Context()
            authenticator = ZapAuthenticator(self.curve, context)
            try:
                await authenticator.start()  # before the bind: libzmq admits all without
            except BaseException:
                await self._release()
                raise
            self.authenticator = authenticator
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, options.send_hwm)
        sock.setsockopt(zmq.RCVHWM, options.receive_hwm)
        sock.setsockopt(zmq.LINGER, round(options.linger * 1000))
        if options.max_message_size is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, options.max_message_size)
        if self.curve is not None:
            configure_server(sock, self.curve)  # before the bind: it applies to later binds
        endpoints = []
        for endpoint in self.bind:
            try:
                await bind(sock, endpoint)
            except BaseException as exc:
                sock.close(linger=0)
                await self._release()
                if not isinstance(exc, zmq.ZMQError):
                    raise
                raise OSError(exc.errno, f"MDP broker cannot bind {endpoint}: {exc}") from None
            endpoints.append(cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode())
        self._socket, self.endpoints = sock, endpoints
        self._io = SocketIO(sock, self._handle, batch=BATCH, name="MDP broker")
        self._sender = RouterSender(
            self._io, self.options.send_timeout, self._undelivered, self._drop
        )
        self._io.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._housekeeping(), name="cordio.mdp.broker:heartbeat"),
        ]
        if self.authenticator is not None:
            keys = self.authenticator.authorized
            log.info(
                "MDP broker listening on %s (CURVE: %d authorized keys in %s)",
                ", ".join(endpoints),
                len(keys),
                keys.directory,
            )
            if any(endpoint.startswith("inproc://") for endpoint in endpoints):
                log.warning(
                    "MDP broker: libzmq authenticates no inproc:// connection; any socket of "
                    "the broker's context may use its inproc:// endpoint"
                )
        else:
            log.info("MDP broker listening on %s", ", ".join(endpoints))

    async def _release(self) -> None:
        """Stop the ZAP handler, then terminate the broker's own context (in a thread:
        it waits for the sockets' linger)."""
        authenticator, self.authenticator = self.authenticator, None
        if authenticator is not None:
            await authenticator.stop()
        context, self._own_context = self._own_context, None
        if context is not None:
            await asyncio.to_thread(context.term)

    async def stop(self) -> None:
        """Stop serving: send DISCONNECT to every worker (RFC 7: the broker MAY send it at
        any time), drop the queued requests (counted as ``broker_stopped``; clients retry),
        close the socket. Safe to call twice."""
        sock, self._socket = self._socket, None
        io, self._io = self._io, None
        if sock is None or io is None:
            return
        io.close()  # before the socket closes: the loop must not watch a closed descriptor
        sender, self._sender = self._sender, None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if sender is not None:
            await sender.close()
        for worker in list(self._workers.values()):
            try:
                io.send([worker.identity, *Disconnect(worker.version).to_frames()])
            except zmq.ZMQError:
                pass  # gone, or its pipe is full: it will notice by heartbeating
            self.disconnects["stopping"] += 1
        pending = sum(len(s.requests) for s in self._services.values())
        pending += sum(1 for w in self._workers.values() if w.job is not None)
        if pending:
            self.drops["broker_stopped"] += pending
        self._workers.clear()
        self._services.clear()
        sock.close()
        await self._release()  # after the socket: no handshake without the handler
        log.info("MDP broker on %s stopped", ", ".join(self.endpoints))

    # -- introspection ------------------------------------------------------------------

    def services(self) -> list[ServiceInfo]:
        """Every service the broker knows (registered workers or queued requests)."""
        return [
            ServiceInfo(
                s.name.decode("utf-8", "replace"), len(s.workers), len(s.idle), len(s.requests)
            )
            for s in self._services.values()
        ]

    def workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        now = self.clock.monotonic()
        return [
            WorkerInfo(
                w.identity.hex(),
                w.host,
                w.service.name.decode("utf-8", "replace"),
                w.version,
                w.job is not None,
                w.served,
                max(0.0, w.expires_at - now),
            )
            for w in self._workers.values()
        ]

    # -- receiving ----------------------------------------------------------------------

    def _handle(self, frames: list[bytes]) -> None:
        try:
            identity = frames[0]
            limit = self.options.max_message_size
            if limit is not None and sum(map(len, frames)) - len(identity) > limit:
                self._drop("too_large", f"{len(frames) - 1} frames over {limit} bytes")
                return
            try:
                message = parse(frames[1:])
            except MalformedMessage as exc:
                self._malformed(identity, exc)
                return
            if isinstance(message, ClientRequest):
                self._on_request(identity, message)
            else:
                self._on_worker(identity, message)
        except Exception:  # never let one message stop the broker
            log.exception("MDP broker: unexpected error handling a message; it was dropped")
            self.drops["internal_error"] += 1

    def _malformed(self, identity: bytes, exc: MalformedMessage) -> None:
        self._drop(exc.reason, f"from {identity.hex()}: {exc.detail}")
        worker = self._workers.get(identity)
        if worker is not None:  # RFC 7: treat that peer as invalid
            self._expel(worker, "malformed", exc.detail)

    # -- clients ------------------------------------------------------------------------

    def _on_request(self, client: bytes, request: ClientRequest) -> None:
        self.requests += 1
        if request.service.startswith(MMI_PREFIX):
            self._mmi(client, request)
            return
        service = self._service(request.service)
        if len(service.requests) >= self.options.max_queued:
            name = request.service.decode("utf-8", "replace")
            job = _Pending(client, request.version, request.service, request.body, 0.0)
            self._fail(
                job,
                QUEUE_FULL,
                f"service {name!r} has {self.options.max_queued} requests queued (max_queued)",
                "queue_full",
            )
            return
        deadline = self.clock.monotonic() + self.options.request_ttl
        service.requests.append(
            _Pending(client, request.version, request.service, request.body, deadline)
        )
        self._dispatch(service)

    def _mmi(self, client: bytes, request: ClientRequest) -> None:
        """RFC 8: ``mmi.service`` → 200 when a worker of the named service is registered,
        else 404; any other ``mmi.*`` → 501."""
        if request.service == b"mmi.service":
            known = self._services.get(request.body[0])
            code = b"200" if known is not None and known.workers else b"404"
        else:
            code = b"501"
        reply = ClientReply(request.version, request.service, (code,))
        if self._send(client, reply.to_frames()):
            self.replies += 1
        else:
            self._drop("client_unreachable", f"MMI reply to {client.hex()}")

    def _fail(self, job: _Pending, status: int, message: str, reason: str) -> None:
        """Answer a request with an error reply (:mod:`cordio.zmq.mdp.errors`)."""
        self.failed[reason] += 1
        log.info("MDP request for %r failed: %d %s", job.service, status, message)
        reply = ClientReply(job.version, job.service, error_body(status, message))
        if not self._send(job.client, reply.to_frames()):
            self._drop("client_unreachable", f"error reply to {job.client.hex()}")

    def _forward(self, job: _Pending, reply: Reply) -> None:
        if reply.final:
            if self._send(
                job.client, ClientReply(job.version, job.service, reply.body).to_frames()
            ):
                self.replies += 1
            else:
                self._drop("client_unreachable", f"reply to {job.client.hex()}")
        elif job.version is Version.V02:
            job.streamed = True
            partial = ClientReply(job.version, job.service, reply.body, final=False)
            if not self._send(job.client, partial.to_frames()):
                self._drop("client_unreachable", f"PARTIAL to {job.client.hex()}")
        else:
            self._drop(
                "partial_to_v01_client", f"MDP/0.1 client {job.client.hex()} takes one REPLY"
            )

    # -- workers ------------------------------------------------------------------------

    def _on_worker(self, identity: bytes, command: WorkerCommand) -> None:
        worker = self._workers.get(identity)
        if isinstance(command, Disconnect):
            if worker is not None:  # RFC 7: send no further commands to that worker
                self._lose(worker, "disconnect")
            return
        if worker is None:
            self._on_stranger(identity, command)
            return
        if command.version is not worker.version:
            self._expel(
                worker,
                "unexpected_command",
                f"{command.version.value} command from an {worker.version.value} worker",
            )
            return
        worker.expires_at = self.clock.monotonic() + self.options.heartbeat_expiry
        if isinstance(command, Heartbeat):
            return
        if isinstance(command, Ready):
            self._expel(worker, "unexpected_command", "a second READY (RFC 7: MUST NOT)")
            return
        if isinstance(command, Request):
            self._expel(worker, "unexpected_command", "REQUEST from a worker")
            return
        job = worker.job
        if job is None or command.client != job.client:
            what = "no request" if job is None else "another client's request"
            self._drop("unexpected_reply", f"{command.command} for {what} from {identity.hex()}")
            self._expel(worker, "unexpected_command", f"{command.command} for {what}")
            return
        self._forward(job, command)
        if command.final:
            worker.job = None
            worker.served += 1
            worker.service.idle[identity] = worker
            self._dispatch(worker.service)

    def _on_stranger(self, identity: bytes, command: WorkerCommand) -> None:
        """A worker command from a peer that is not registered."""
        if isinstance(command, Ready):
            if command.service.startswith(MMI_PREFIX):
                self.disconnects["mmi_namespace"] += 1
                log.warning(
                    "MDP worker %s asked for %r: the mmi. namespace is the broker's (RFC 8); "
                    "disconnected",
                    identity.hex(),
                    command.service,
                )
                self._send(identity, Disconnect(command.version).to_frames())
                return
            self._register(identity, command)
            return
        if isinstance(command, Reply):
            self._drop("reply_from_unknown_worker", f"{command.command} from {identity.hex()}")
        # RFC 7: a valid but unexpected command gets DISCONNECT (a worker that lost its
        # broker registers again on a new socket)
        self.disconnects["unknown_worker"] += 1
        log.debug("MDP: %s from unregistered worker %s; DISCONNECT", command, identity.hex())
        self._send(identity, Disconnect(command.version).to_frames())

    def _register(self, identity: bytes, ready: Ready) -> None:
        now = self.clock.monotonic()
        service = self._service(ready.service)
        worker = _Worker(identity, ready.version, service, now + self.options.heartbeat_expiry, now)
        worker.host = self._io.peer_address() if self._io is not None else None
        self._workers[identity] = worker
        service.workers[identity] = worker
        service.idle[identity] = worker
        log.info(
            "MDP worker %s ready for %r (%s) from %s",
            identity.hex(),
            ready.service.decode("utf-8", "replace"),
            ready.version.value,
            worker.host or "a local peer",
        )
        self._dispatch(service)

    def _send_worker(self, worker: _Worker, frames: list[bytes]) -> bool:
        worker.sent_at = self.clock.monotonic()
        return self._send(worker.identity, frames)

    def _expel(self, worker: _Worker, reason: str, detail: str) -> None:
        """DISCONNECT a worker for breaking the protocol, and remove it."""
        log.warning("MDP worker %s disconnected: %s", worker.identity.hex(), detail)
        self._send(worker.identity, Disconnect(worker.version).to_frames())
        self._lose(worker, reason)

    def _lose(self, worker: _Worker, reason: str) -> None:
        service = self._remove(worker, reason)
        self._dispatch(service)

    def _remove(self, worker: _Worker, reason: str) -> _Service:
        """Forget a worker; put the request it held back at the front of its queue, once."""
        identity, service = worker.identity, worker.service
        self._workers.pop(identity, None)
        service.workers.pop(identity, None)
        service.idle.pop(identity, None)
        self.disconnects[reason] += 1
        log.info(
            "MDP worker %s for %r removed (%s)",
            identity.hex(),
            service.name.decode("utf-8", "replace"),
            reason,
        )
        job, worker.job = worker.job, None
        if job is not None:
            if job.requeues or job.streamed:
                self._fail(
                    job,
                    WORKER_LOST,
                    "the worker holding the request was lost "
                    + ("after it streamed PARTIALs" if job.streamed else "twice"),
                    "worker_lost",
                )
            else:
                job.requeues += 1
                self.requeued += 1
                service.requests.appendleft(job)
        return service

    # -- services and dispatch ----------------------------------------------------------

    def _service(self, name: bytes) -> _Service:
        service = self._services.get(name)
        if service is None:
            service = self._services[name] = _Service(name)
        return service

    def _forget_if_unused(self, service: _Service) -> None:
        if service.workers or service.requests:
            return
        if self._services.get(service.name) is service:
            del self._services[service.name]

    def _dispatch(self, service: _Service) -> None:
        """Hand queued requests to idle workers, longest idle first (RFC 7: LRU)."""
        now = self.clock.monotonic()
        requests, idle = service.requests, service.idle
        while requests and idle:
            job = requests.popleft()
            if job.deadline <= now:
                self._expire(job)
                continue
            worker = idle.pop(next(iter(idle)))
            worker.job = job
            frames = Request(worker.version, job.client, job.body).to_frames()
            if not self._send_worker(worker, frames):
                worker.job = None
                requests.appendleft(job)
                self._drop("worker_unreachable", f"REQUEST to {worker.identity.hex()}")
                self._remove(worker, "unreachable")
        self._forget_if_unused(service)

    def _expire(self, job: _Pending) -> None:
        name = job.service.decode("utf-8", "replace")
        self._fail(
            job,
            EXPIRED,
            f"no worker of {name!r} took the request within "
            f"{self.options.request_ttl:g} s (request_ttl)",
            "expired",
        )

    # -- time ---------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        options = self.options
        tick = min(options.heartbeat_interval, options.request_ttl) / 4
        while True:
            await self.clock.sleep_until(self.clock.monotonic() + tick)
            try:
                self._tick()
            except Exception:
                log.exception("MDP broker: unexpected error in housekeeping")

    def _tick(self) -> None:
        """Remove every expired worker, heartbeat the quiet ones, expire old requests."""
        now = self.clock.monotonic()
        interval = self.options.heartbeat_interval
        touched: set[bytes] = set()
        for worker in list(self._workers.values()):  # every one, not up to the first alive
            if worker.expires_at <= now:
                touched.add(self._remove(worker, "expired").name)
            elif now - worker.sent_at >= interval and not self._send_worker(
                worker, Heartbeat(worker.version).to_frames()
            ):
                touched.add(self._remove(worker, "unreachable").name)
        for service in list(self._services.values()):
            requests = service.requests
            while requests and requests[0].deadline <= now:
                self._expire(requests.popleft())
            if service.name in touched:
                self._dispatch(service)
            else:
                self._forget_if_unused(service)

    # -- sending ------------------------------------------------------------------------

    def _send(self, identity: bytes, frames: list[bytes]) -> bool:
        """Send to one peer (:meth:`RouterSender.send`): ``False`` when it is gone."""
        sender = self._sender
        return sender is not None and sender.send(identity, frames)

    def _undelivered(self, identity: bytes, reason: str, count: int) -> None:
        """A peer's backlog was given up (:class:`RouterSender`): count the drop and lose
        the worker it was for."""
        worker = self._workers.get(identity)
        if reason == "unreachable":
            drop = "worker_unreachable" if worker is not None else "client_unreachable"
        else:
            drop = reason
        self._drop(drop, f"{count} message(s) for {identity.hex()}", count)
        if worker is not None:
            self._lose(worker, "backpressure" if reason == "backpressure" else "unreachable")

    def _drop(self, reason: str, detail: str, count: int = 1) -> None:
        """Count a dropped message; warn once per reason every :data:`WARN_EVERY` seconds."""
        self.drops[reason] += count
        now = time.monotonic()
        last = self._warned.get(reason)
        if last is None or now - last >= WARN_EVERY:
            self._warned[reason] = now
            log.warning(
                "MDP broker dropped %s (%s); %d dropped for this reason so far",
                detail,
                reason,
                self.drops[reason],
            )
        else:
            log.debug("MDP broker dropped %s (%s)", detail, reason)
