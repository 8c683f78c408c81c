"""Endpoints on every transport; brokers and workers that stop with the test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from cordio.zmq.mdp.broker import BrokerOptions, MDPBroker
from cordio.zmq.mdp.worker import Handler, Job, MDPWorker, WorkerOptions
from tests.conftest import free_port

#: Heartbeats fast enough that expiry tests take a fraction of a second.
FAST = {"heartbeat_interval": 0.1, "heartbeat_liveness": 3, "request_ttl": 5.0}

_names = itertools.count()
StartBroker = Callable[..., Awaitable[MDPBroker]]


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path (``ipc://`` paths are limited to ~100 bytes)."""
    path = tempfile.mkdtemp(prefix="mdp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def endpoint_for(kind: str, short_dir: str) -> str:
    if kind == "tcp":
        return f"tcp://127.0.0.1:{free_port()}"
    if kind == "ipc":
        return f"ipc://{short_dir}/broker-{next(_names)}.sock"
    return f"inproc://mdp-broker-{next(_names)}"


@pytest.fixture(params=["tcp", "ipc", "inproc"])
def endpoint(request: pytest.FixtureRequest, short_dir: str) -> str:
    """One endpoint per transport (the test runs once for each)."""
    return endpoint_for(request.param, short_dir)


@pytest.fixture
def tcp_endpoint(short_dir: str) -> str:
    return endpoint_for("tcp", short_dir)


@pytest.fixture
async def start_broker() -> AsyncIterator[StartBroker]:
    """``await start_broker(endpoint, curve=None, **options)``: a started broker (``FAST``
    heartbeats unless overridden), stopped after the test."""
    brokers: list[MDPBroker] = []

    async def start(endpoint: str, curve: Any = None, **options: Any) -> MDPBroker:
        broker = MDPBroker(endpoint, BrokerOptions(**{**FAST, **options}), curve=curve)
        await broker.start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        await broker.stop()


StartWorker = Callable[..., Awaitable[MDPWorker]]


@pytest.fixture
async def start_worker() -> AsyncIterator[StartWorker]:
    """``await start_worker(endpoint, service, handler, curve=None, **options)``: a started
    worker (heartbeats as ``FAST``, reconnects after 0.05 s unless overridden), stopped
    after."""
    workers: list[MDPWorker] = []

    async def start(
        endpoint: str, service: str, handler: Handler, curve: Any = None, **options: Any
    ) -> MDPWorker:
        defaults = {
            "heartbeat_interval": 0.1,
            "reconnect_initial": 0.05,
            "reconnect_max": 0.5,
            "stop_grace": 1.0,
        }
        worker = MDPWorker(
            endpoint, service, handler, WorkerOptions(**{**defaults, **options}), curve=curve
        )
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.stop()


async def echo(job: Job) -> list[bytes]:
    """A handler: the request's body back."""
    return list(job.body)
