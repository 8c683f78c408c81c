"""Shared fixtures: server availability, free ports, isolated configuration."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator

import pytest

REQUIRE_SERVICES = os.environ.get("CORDIO_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("CORDIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_server(name: str, host: str, port: int) -> None:
    """Skip the test when the server is down, or fail under CORDIO_REQUIRE_SERVICES=1."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (CORDIO_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    need_server("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Run every test in an empty directory without stray app environment variables."""
    for name in list(os.environ):
        if name.split("__", 1)[0] in {"TEST", "ORDERS", "SVC", "APP"} and "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back after a test configured logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
