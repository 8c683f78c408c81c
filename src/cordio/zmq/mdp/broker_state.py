"""What an MDP broker knows: its options, the services, workers and requests it holds, and
the snapshots :meth:`~cordio.zmq.mdp.broker.MDPBroker.services` and
:meth:`~cordio.zmq.mdp.broker.MDPBroker.workers` give of them."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from cordio.zmq.mdp._options import counts, seconds
from cordio.zmq.mdp.frames import Version


@dataclass(frozen=True)
class BrokerOptions:
    """How a broker behaves; every duration in seconds.

    Attributes:
        heartbeat_interval: seconds between heartbeats (default 2.5, RFC 7's reference
            value); workers must use about the same (RFC 7, "Known Weaknesses").
        heartbeat_liveness: heartbeats a worker may miss before it is removed (default 3;
            RFC 7: "usually 3-5").
        max_queued: requests waiting per service (default 1000); one more gets an error
            reply ``503``.
        request_ttl: seconds a request may wait in a queue (default 30); then it gets an
            error reply ``504``.
        max_message_size: bytes a message may have, its frames together (default 16 MiB;
            ``None``: no limit); also ``ZMQ_MAXMSGSIZE``, the limit libzmq puts on one frame.
        send_timeout: seconds a message may wait for a peer whose pipe is full before its
            backlog is dropped (default 1).
        send_hwm: messages queued per peer in libzmq before *try again* (``ZMQ_SNDHWM``,
            default 1000).
        receive_hwm: ``ZMQ_RCVHWM`` (default 1000).
        linger: seconds the socket keeps trying to deliver the workers' DISCONNECT after
            :meth:`MDPBroker.stop` (default 0.5).

    Raises:
        ValueError: a value out of range.
    """

    heartbeat_interval: float = 2.5
    heartbeat_liveness: int = 3
    max_queued: int = 1000
    request_ttl: float = 30.0
    max_message_size: int | None = 16 * 1024 * 1024
    send_timeout: float = 1.0
    send_hwm: int = 1000
    receive_hwm: int = 1000
    linger: float = 0.5

    def __post_init__(self) -> None:
        seconds(self, "heartbeat_interval", "request_ttl", "send_timeout")
        seconds(self, "linger", zero=True)
        counts(self, "heartbeat_liveness", "max_queued", "send_hwm", "receive_hwm")
        if self.max_message_size is not None:
            counts(self, "max_message_size")

    @property
    def heartbeat_expiry(self) -> float:
        """Seconds of silence after which a worker is removed."""
        return self.heartbeat_interval * self.heartbeat_liveness


@dataclass(frozen=True)
class ServiceInfo:
    """One service as the broker sees it (:meth:`MDPBroker.services`).

    Attributes:
        name: the service name.
        workers: registered workers.
        idle: of those, how many wait for a request.
        queued: requests waiting for a worker.
    """

    name: str
    workers: int
    idle: int
    queued: int


@dataclass(frozen=True)
class WorkerInfo:
    """One registered worker (:meth:`MDPBroker.workers`).

    Attributes:
        identity: the worker's ROUTER identity, hex.
        host: where it connected from, as libzmq's ``Peer-Address`` gives it: the IP
            address over ``tcp://``, ``localhost:UID:GID:PID`` over ``ipc://`` (Linux);
            ``None`` over ``inproc://``.
        service: its service.
        version: the protocol version it speaks.
        busy: whether it holds a request.
        served: requests it has answered.
        expires_in: seconds until it is removed unless it sends something.
    """

    identity: str
    host: str | None
    service: str
    version: Version
    busy: bool
    served: int
    expires_in: float


@dataclass(eq=False, slots=True)
class _Pending:
    """A client's request inside the broker."""

    client: bytes
    version: Version
    service: bytes
    body: tuple[bytes, ...]
    deadline: float
    requeues: int = 0
    streamed: bool = False


@dataclass(eq=False, slots=True)
class _Service:
    name: bytes
    requests: collections.deque[_Pending] = field(default_factory=collections.deque)
    workers: dict[bytes, _Worker] = field(default_factory=dict)
    #: idle workers, longest idle first (dicts keep insertion order)
    idle: dict[bytes, _Worker] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Worker:
    identity: bytes
    version: Version
    service: _Service
    expires_at: float
    sent_at: float
    job: _Pending | None = None
    served: int = 0
    host: str | None = None
