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

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cordio.settings import Settings

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
        broker: the broker this app runs (:class:`BrokerConfig`).
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
    broker: BrokerConfig = Field(default_factory=BrokerConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_endpoint(value)
