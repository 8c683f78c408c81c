"""Stop and start the real brokers for outage tests; every stop is undone, even on failure.

RabbitMQ: ``rabbitmqctl stop_app`` / ``start_app`` (the Erlang node stays up). NATS: the
running ``nats-server`` is stopped with SIGTERM and started again with its own command line
(read from ``/proc``), so JetStream keeps its file storage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(port: int, up: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) is not up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} still {'down' if up else 'up'} after {timeout} s")
        time.sleep(0.05)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def _nats_pid() -> int | None:
    """The running nats-server's pid (not a zombie left by an earlier restart)."""
    found = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True)
    for pid in (int(p) for p in found.stdout.split()):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            return pid
    return None


_started: list[subprocess.Popen[bytes]] = []


class Outage:
    """One broker's outage: :meth:`stop`, then :meth:`start` (also at exit, always)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.down = False
        self._nats_cmd: list[str] | None = None

    def stop(self) -> None:
        if self.kind == "amqp":
            _rabbitmqctl("stop_app")
            _wait(5672, up=False)
        else:
            pid = _nats_pid()
            if pid is None:
                pytest.fail("no nats-server process to stop")
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            self._nats_cmd = [part.decode() for part in raw.split(b"\0") if part]
            os.kill(pid, signal.SIGTERM)
            _wait(4222, up=False)
            for proc in _started:  # reap a server this process started earlier
                if proc.pid == pid:
                    proc.wait(30)
            deadline = time.monotonic() + 30
            while _nats_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        self.down = True

    def start(self) -> None:
        if not self.down:
            return
        if self.kind == "amqp":
            _rabbitmqctl("start_app")
            _rabbitmqctl("await_startup")
            _wait(5672, up=True)
        else:
            assert self._nats_cmd is not None
            _started.append(
                subprocess.Popen(
                    self._nats_cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # outlives the test run, as the original did
                )
            )
            _wait(4222, up=True)
        self.down = False


@contextlib.contextmanager
def outage(kind: str) -> Iterator[Outage]:
    """Yield an :class:`Outage` for ``amqp`` or ``nats``; the broker runs again at exit."""
    control = Outage(kind)
    try:
        yield control
    finally:
        control.start()
