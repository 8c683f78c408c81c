"""sd_notify: READY=1, STOPPING=1 and WATCHDOG=1 reach the supervisor's socket."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.sdnotify import Notifier


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield path, sock
    sock.close()


async def receive(sock: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
    return data.decode()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert notifier.watchdog_interval is None


def test_abstract_socket_address() -> None:
    name = f"cordio-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier(environ={"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_a_vanished_supervisor_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "gone.sock"
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(gone)})
    assert notifier.notify("READY=1") is False
    (record,) = [r for r in caplog.records if r.name == "cordio.sdnotify"]
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"sd_notify 'READY=1' to '{gone}' failed: [Errno 2] No such file or directory"
    )


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(environ=env).watchdog_interval == 1.0
    env["WATCHDOG_PID"] = "1"  # meant for another process
    assert Notifier(environ=env).watchdog_interval is None


async def test_app_notifies_ready_watchdog_and_stopping(
    supervisor: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = supervisor
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    app = App("svc", config=[EnvSource("svc", environ={"SVC__ADMIN__ENABLED": "false"})])
    async with app.running():
        assert await receive(sock) == "READY=1"
        assert await receive(sock) == "WATCHDOG=1"
        assert await receive(sock) == "WATCHDOG=1"
    messages = []
    while True:
        try:
            messages.append(sock.recv(100).decode())
        except BlockingIOError:
            break
    # the watchdog runs until the background tasks stop, just after STOPPING=1
    assert messages.count("STOPPING=1") == 1, messages
    assert set(messages) - {"STOPPING=1"} <= {"WATCHDOG=1"}, messages
