"""The packages' surface: ``__all__`` says what is there, the wire format needs no pyzmq,
and the rest names the extra when pyzmq is missing."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

import cordio.zmq
import cordio.zmq.mdp as mdp


@pytest.mark.parametrize("package", [mdp, cordio.zmq], ids=lambda p: p.__name__)
def test_all_is_honest(package: ModuleType) -> None:
    assert sorted(package.__all__) == sorted(package._WHERE)
    for name in package.__all__:
        value = getattr(package, name)
        assert value.__name__ == name
        assert name in dir(package)
        doc = value.__dict__.get("__doc__") if isinstance(value, type) else value.__doc__
        assert doc, f"{package.__name__}.{name} has no docstring"  # its own, not a base's
        assert len(doc.strip()) >= 20


def test_without_pyzmq() -> None:
    script = """
import sys
sys.modules["zmq"] = None  # as if pyzmq were not installed
from cordio.zmq.mdp.frames import Ready, Version, parse
assert parse(Ready(Version.V01, b"echo").to_frames()) == Ready(Version.V01, b"echo")
from cordio.errors import MissingExtraError
try:
    from cordio.zmq.mdp import MDPBroker
except MissingExtraError as exc:
    print(exc)
import cordio.zmq
assert "create_certs" in dir(cordio.zmq)
try:
    from cordio.zmq import create_certs
except MissingExtraError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.count("pip install 'cordio[zmq]'") == 2


@pytest.mark.parametrize(
    ("options", "values", "named"),
    [
        (mdp.BrokerOptions, {"heartbeat_interval": 0}, "heartbeat_interval"),
        (mdp.BrokerOptions, {"request_ttl": float("inf")}, "request_ttl"),
        (mdp.BrokerOptions, {"linger": -1}, "linger"),
        (mdp.BrokerOptions, {"max_queued": 0}, "max_queued"),
        (mdp.BrokerOptions, {"max_message_size": 0}, "max_message_size"),
        (mdp.WorkerOptions, {"heartbeat_liveness": 0}, "heartbeat_liveness"),
        (mdp.WorkerOptions, {"concurrency": 0}, "concurrency"),
        (mdp.WorkerOptions, {"reconnect_initial": 2, "reconnect_max": 1}, "reconnect_max"),
        (mdp.ClientOptions, {"timeout": 0}, "timeout"),
        (mdp.ClientOptions, {"retries": -1}, "retries"),
        (mdp.ClientOptions, {"max_sockets": 0}, "max_sockets"),
    ],
)
def test_options_refuse_values_out_of_range(
    options: type, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        options(**values)


@pytest.mark.parametrize("cls", [mdp.MDPBroker, mdp.MDPWorker])
def test_broker_and_worker_have_the_service_shape(cls: type) -> None:
    """``cordio.lifecycle.Service``: async ``start()`` and ``stop()``."""
    assert inspect.iscoroutinefunction(cls.start)
    assert inspect.iscoroutinefunction(cls.stop)
