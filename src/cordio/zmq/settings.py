"""The ``zmq`` section: where the MDP broker is, how workers and clients talk to it.

::

    [zmq]
    url = "tcp://127.0.0.1:5555"   # what workers and clients connect to
    concurrency = 4                # connections (requests at once) per worker service

    [zmq.broker]
    enabled = true                 # run the broker inside this app
    bind = ["tcp://0.0.0.0:5555"]  # or "tcp://0.0.0.0" (no port): a free one of port_range

The defaults run everything in one process over ``inproc://``: an app with
``@app.zmq.service`` handlers and ``zmq.broker.enabled`` needs no other setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cordio.settings import Settings
from cordio.zmq.supervisor import MAX_PROCESSES

#: Transports libzmq connects over (ZeroMQ RFC 37 names them; cordio accepts these).
SCHEMES = ("tcp://", "ipc://", "inproc://")


def _check_endpoint(value: str) -> str:
    if not value.startswith(SCHEMES):
        raise ValueError(f"{value!r} is no ZeroMQ endpoint; use one of {', '.join(SCHEMES)}")
    return value


class BrokerConfig(BaseModel):
    """``zmq.broker``: the MDP broker run by this app.

    Attributes:
        enabled: run the broker as a service of this app (default false).
        bind: endpoints it binds (default ``["inproc://cordio-mdp"]``); a ``tcp://`` one
            without a port (``tcp://0.0.0.0``) takes the first free port of ``port_range``.
        port_range: ``[first, last]`` ports tried for an endpoint without a port (default
            6001-6050).
        state_file: a file the bound endpoints are written to (one per line) once bound,
            for workers on other hosts and scripts to read (default: none).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    bind: list[str] = Field(default_factory=lambda: ["inproc://cordio-mdp"], min_length=1)
    port_range: tuple[int, int] = (6001, 6050)
    state_file: str = ""

    @field_validator("bind")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        return [_check_endpoint(v) for v in value]

    @model_validator(mode="after")
    def _range(self) -> BrokerConfig:
        first, last = self.port_range
        if not (1 <= first <= last <= 65535):
            raise ValueError(f"port_range {self.port_range} is no range of TCP ports")
        return self


class WorkersConfig(BaseModel):
    """``zmq.workers``: local worker processes supervised by this app
    (:mod:`cordio.zmq.supervisor`).

    Attributes:
        auto_start: start them with the app (default false).
        count: how many (default 1); ``cordio zmq workers scale N`` changes it at run time.
        target: the worker app, ``pkg.module:app`` as ``cordio run`` takes it.
        restart_initial: seconds before restarting a process that died (default 0.5),
            doubling up to ``restart_max`` (default 30).
        stop_timeout: seconds a process gets after SIGTERM at shutdown (default 10).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto_start: bool = False
    count: int = Field(1, ge=0, le=MAX_PROCESSES)
    target: str = ""
    restart_initial: float = Field(0.5, gt=0)
    restart_max: float = Field(30.0, gt=0)
    stop_timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _target(self) -> WorkersConfig:
        if self.auto_start and ":" not in self.target:
            raise ValueError("auto_start needs target = 'pkg.module:app' (the worker app)")
        return self


class CurveConfig(BaseModel):
    """``zmq.curve``: CurveZMQ (RFC 26) key pairs and ZAP (RFC 27) authentication; files made
    by ``cordio zmq certs``. Off while the files are not set.

    Attributes:
        server_secret_file: the broker's ``.key_secret`` file; set: the broker of this app
            accepts only CURVE clients and workers whose public key is authorized.
        authorized_keys_dir: the directory of the ``.key`` public key files of every worker
            and client the broker accepts; files added or removed take effect without a
            restart.
        allow: client IP addresses admitted (every other one refused); default: any.
        deny: client IP addresses refused; not together with ``allow``.
        secret_file: this app's own ``.key_secret`` file, for its workers and client; set:
            they speak CURVE to the broker.
        server_public_file: the broker's ``.key`` public key file, with ``secret_file``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_secret_file: str = ""
    authorized_keys_dir: str = ""
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    secret_file: str = ""
    server_public_file: str = ""

    @model_validator(mode="after")
    def _pairs(self) -> CurveConfig:
        if bool(self.server_secret_file) != bool(self.authorized_keys_dir):
            raise ValueError("server_secret_file and authorized_keys_dir go together")
        if bool(self.secret_file) != bool(self.server_public_file):
            raise ValueError("secret_file and server_public_file go together")
        return self

    def server(self) -> Any:
        """The broker's :class:`~cordio.zmq.curve.CurveServerConfig`, or ``None``.

        Raises:
            CurveKeyError: a file is missing or malformed (naming it).
        """
        if not self.server_secret_file:
            return None
        from cordio.zmq.curve import CurveServerConfig

        return CurveServerConfig(
            Path(self.server_secret_file),
            Path(self.authorized_keys_dir),
            allow=tuple(self.allow),
            deny=tuple(self.deny),
        )

    def client(self) -> Any:
        """The workers' and client's :class:`~cordio.zmq.curve.CurveClientConfig`, or
        ``None``.

        Raises:
            CurveKeyError: a file is missing or malformed (naming it).
        """
        if not self.secret_file:
            return None
        from cordio.zmq.curve import CurveClientConfig

        return CurveClientConfig(Path(self.secret_file), Path(self.server_public_file))


class ZmqSettings(Settings, section="zmq"):
    """The ``zmq`` section.

    Attributes:
        url: the broker endpoint workers and clients connect to (default
            ``inproc://cordio-mdp``, the in-app broker).
        version: the MDP version workers and clients speak: ``"0.1"`` (RFC 7, default) or
            ``"0.2"`` (RFC 18, streamed replies).
        concurrency: connections per worker service, each one request at a time (default
            1).
        heartbeat_interval: seconds between heartbeats, broker and workers (default 2.5).
        heartbeat_liveness: heartbeats missed before a peer counts as gone (default 3).
        max_queued: requests waiting per service in the broker (default 1000).
        request_ttl: seconds a request may wait in the broker's queue (default 30).
        max_message_size: bytes a message may have (default 16 MiB).
        timeout: seconds a client request waits for each attempt (default 2.5).
        retries: further attempts of a client request after a timeout (default 2).
        propagate_trace: the client sends the calling handler's W3C trace context in a last
            body frame that plain MDP peers ignore (:mod:`cordio.zmq.trace`; default true).
        broker: the broker this app runs (:class:`BrokerConfig`).
        curve: key pairs and authentication (:class:`CurveConfig`); off by default.
        workers: local worker processes (:class:`WorkersConfig`); off by default.
    """

    url: str = "inproc://cordio-mdp"
    version: Literal["0.1", "0.2"] = "0.1"
    concurrency: int = Field(1, ge=1, le=1024)
    heartbeat_interval: float = Field(2.5, gt=0)
    heartbeat_liveness: int = Field(3, ge=1)
    max_queued: int = Field(1000, ge=1)
    request_ttl: float = Field(30.0, gt=0)
    max_message_size: int = Field(16 * 1024 * 1024, ge=1)
    timeout: float = Field(2.5, gt=0)
    retries: int = Field(2, ge=0)
    propagate_trace: bool = True
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    curve: CurveConfig = Field(default_factory=CurveConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_endpoint(value)
