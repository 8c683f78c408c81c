"""Local worker processes supervised by an app: started, restarted, scaled, stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.testing import TestApp
from cordio.zmq.client import ZmqClient
from cordio.zmq.mdp import MDPError
from cordio.zmq.supervisor import WorkerSupervisor
from tests.conftest import free_port
from tests.eventually import eventually

REPO = Path(__file__).resolve().parents[2]


def supervising_app(port: int, count: int, monkeypatch: pytest.MonkeyPatch, **settings: str) -> App:
    """An app with an in-app broker on ``port`` supervising ``count`` echo worker
    processes; ``settings`` are more ``SUP__...`` variables of its own."""
    worker_env = {
        "ECHOWORKER__ZMQ__URL": f"tcp://127.0.0.1:{port}",
        "ECHOWORKER__ADMIN__ENABLED": "false",
        "ECHOWORKER__LOG__LEVEL": "WARNING",
        "ECHOWORKER__ZMQ__HEARTBEAT_INTERVAL": "0.5",
    }
    for key, value in worker_env.items():  # the worker processes inherit it
        monkeypatch.setenv(key, value)
    environ = {
        "SUP__ZMQ__URL": f"tcp://127.0.0.1:{port}",
        "SUP__ZMQ__BROKER__ENABLED": "true",
        "SUP__ZMQ__BROKER__BIND": f'["tcp://127.0.0.1:{port}"]',
        "SUP__ZMQ__HEARTBEAT_INTERVAL": "0.5",
        "SUP__ZMQ__WORKERS__AUTO_START": "true",
        "SUP__ZMQ__WORKERS__COUNT": str(count),
        "SUP__ZMQ__WORKERS__TARGET": str(REPO / "tests" / "apps" / "zmq_echo_worker.py") + ":app",
        "SUP__ZMQ__WORKERS__RESTART_INITIAL": "0.1",
        "SUP__SHUTDOWN__GRACE": "5",
        **settings,
    }
    app = App("sup", config=[EnvSource("sup", environ=environ)])
    app.dependency(ZmqClient)
    return app


async def cordio(*args: str) -> tuple[int, str]:
    """Run the ``cordio`` command in a process of its own; its exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cordio", *args, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def pids(client: ZmqClient, wanted: int) -> set[int]:
    """The pids answering ``echo`` once ``wanted`` different ones have."""
    seen: set[int] = set()

    async def enough() -> bool:
        reply = await client.request("echo", {"n": 1}, timeout=2)
        seen.add(reply["pid"])
        return len(seen) >= wanted

    await eventually(enough, timeout=30, interval=0.01, what=f"{wanted} workers answering")
    return seen


@pytest.mark.slow
async def test_worker_processes_are_started_restarted_scaled_and_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    app = supervising_app(port, 2, monkeypatch)
    async with TestApp(app) as http:
        assert http.runtime is not None
        (supervisor,) = [s for s in http.runtime.services if isinstance(s, WorkerSupervisor)]
        client = app.get(ZmqClient)
        first = await pids(client, 2)
        assert first == {row["pid"] for row in supervisor.list()}

        victim = next(iter(first))
        os.kill(victim, signal.SIGKILL)  # a worker dies: it is started again
        await eventually(
            lambda: supervisor.restarts == 1 and all(r["alive"] for r in supervisor.list()),
            timeout=30,
            what="the restart",
        )
        after = {row["pid"] for row in supervisor.list()}
        assert len(after) == 2
        assert victim not in after

        code, out = await cordio(
            "zmq", "workers", "scale", "3", "--broker", f"tcp://127.0.0.1:{port}"
        )
        assert code == 0, out
        assert out.startswith("3 worker process(es)"), out
        await pids(client, 3)
        code, out = await cordio("zmq", "workers", "list", "--broker", f"tcp://127.0.0.1:{port}")
        assert out.startswith("3 worker process(es)"), out
        for hostile in (
            {"method": "scale", "args": ["many"]},
            {"method": "scale", "args": [-1]},
            {"method": "scale", "args": [1, 2]},
            {"method": "shutdown"},
            ["scale", 0],
            b"\xc1\xc1 not a payload",
        ):
            with pytest.raises(MDPError) as refused:
                await client.request("cordio.workers", hostile)
            assert refused.value.status == 400, hostile
        assert len(supervisor.list()) == 3  # nothing changed
        running = [row["pid"] for row in supervisor.list()]
    for pid in running:  # stopped with the app
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_supervisor_needs_a_target() -> None:
    with pytest.raises(ValueError, match="names no app"):
        WorkerSupervisor("", 1)
    from pydantic import ValidationError

    from cordio.zmq.settings import WorkersConfig

    with pytest.raises(ValidationError, match="auto_start needs target"):
        WorkersConfig(auto_start=True)
