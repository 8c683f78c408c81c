"""Start-up and shutdown order, services, drain and cancellation, exit codes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.testing import TestApp
from tests.conftest import free_port
from tests.eventually import eventually, eventually_sync

REPO = Path(__file__).resolve().parents[1]


def quiet(name: str, **env: str) -> list[Any]:
    return [EnvSource(name, environ={f"{name.upper()}__{k}": v for k, v in env.items()})]


class Recorder:
    """A service that records its calls into a shared list."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events

    async def start(self) -> None:
        self.events.append(f"start {self.name}")

    async def stop_accepting(self) -> None:
        self.events.append(f"stop_accepting {self.name}")

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")


async def test_full_order_resources_services_drain_teardown() -> None:
    events: list[str] = []
    app = App("svc", config=quiet("svc"))

    @app.resource
    async def base() -> AsyncIterator[str]:
        events.append("setup base")
        yield "base"
        events.append("teardown base")

    @app.resource
    async def top(base: str) -> AsyncIterator[int]:
        events.append("setup top")
        yield 1
        events.append("teardown top")

    app.add(Recorder("one", events))
    app.add(Recorder("two", events))

    @app.http.get("/")
    async def root(top: int) -> int:
        return top

    async with app.running(serve=False) as runtime:
        assert runtime.ready
        events.append("running")
    assert events == [
        "setup base",
        "setup top",
        "start one",
        "start two",
        "running",
        "stop_accepting two",
        "stop_accepting one",
        "stop two",
        "stop one",
        "teardown top",
        "teardown base",
    ]
    assert runtime.clean


async def test_service_start_failure_stops_started_parts_in_reverse() -> None:
    events: list[str] = []
    app = App("svc", config=quiet("svc"))

    @app.resource
    async def res() -> AsyncIterator[str]:
        events.append("setup")
        yield "r"
        events.append("teardown")

    class Broken:
        def __init__(self, res: str) -> None:
            pass

        async def start(self) -> None:
            raise OSError("port taken")

        async def stop(self) -> None:
            events.append("stop broken")

    app.add(Recorder("ok", events))
    app.add(Broken)
    with pytest.raises(StartupError, match="port taken"):
        async with app.running(serve=False):
            pass
    assert events == ["setup", "start ok", "stop ok", "teardown"]
    assert not app.ready


async def test_long_running_start_with_started_event() -> None:
    app = App("svc", config=quiet("svc"))
    stopped = asyncio.Event()

    class Forever:
        def __init__(self) -> None:
            self.started = asyncio.Event()

        async def start(self) -> None:
            self.started.set()
            await stopped.wait()

        async def stop(self) -> None:
            stopped.set()

    service = Forever()
    app.add(service)
    async with app.running(serve=False) as runtime:
        assert service.started.is_set()
        assert runtime.ready
    assert stopped.is_set()


async def test_service_that_returns_from_start_early_fails_startup() -> None:
    app = App("svc", config=quiet("svc"))

    class Quitter:
        def __init__(self) -> None:
            self.started = asyncio.Event()

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

    app.add(Quitter())
    with pytest.raises(StartupError, match="returned from start"):
        async with app.running(serve=False):
            pass


async def test_crashing_service_stops_the_app_uncleanly() -> None:
    app = App("svc", config=quiet("svc", ADMIN__ENABLED="false"))
    crash = asyncio.Event()

    class Fragile:
        def __init__(self) -> None:
            self.started = asyncio.Event()

        async def start(self) -> None:
            self.started.set()
            await crash.wait()
            raise RuntimeError("lost the upstream")

        async def stop(self) -> None:
            return None

    app.add(Fragile())
    serving = asyncio.ensure_future(app._serve(None))
    await eventually(lambda: app.ready, timeout=5, what="the app ready")
    crash.set()
    assert await asyncio.wait_for(serving, 10) == 3


async def test_drain_waits_for_in_flight_calls_within_grace() -> None:
    app = App("svc", config=quiet("svc", SHUTDOWN__GRACE="10"))
    entered = asyncio.Event()
    release = asyncio.Event()

    @app.http.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "done"

    client = TestApp(app)
    await client.__aenter__()
    runtime = client.runtime
    assert runtime is not None
    request = asyncio.ensure_future(client.get("/slow"))
    await entered.wait()
    stopping = asyncio.ensure_future(runtime.stop())
    await eventually(lambda: runtime.state == "stopping", timeout=5, what="stopping")
    ready, body = await runtime.health()
    assert not ready
    assert body["status"] == "stopping"
    assert body["in_flight"] == 1
    assert not stopping.done()
    release.set()
    response = await request
    assert response.json() == "done"
    assert await stopping is True
    await client.aclose()


async def test_calls_past_grace_are_cancelled_and_shutdown_is_unclean() -> None:
    app = App("svc", config=quiet("svc", SHUTDOWN__GRACE="0.05", HTTP__PORT="0"))
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    @app.http.get("/stuck")
    async def stuck() -> str:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async with app.running() as runtime:
        port = runtime.services[0].port
        async with httpx.AsyncClient() as client:
            request = asyncio.ensure_future(client.get(f"http://127.0.0.1:{port}/stuck"))
            await entered.wait()
            clean = await runtime.stop()
            assert not clean
            assert cancelled.is_set()
            try:
                outcome: int | str = (await request).status_code
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            assert outcome == 500  # the server answers a cancelled call, never hangs it


def run_cordio(
    target: str, cwd: Path, env: dict[str, str], *options: str
) -> subprocess.Popen[bytes]:
    cordio = Path(sys.executable).with_name("cordio")
    return subprocess.Popen(
        [str(cordio), "run", target, *options],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, Any]:
    """Poll ``url`` until it answers 200 and return its JSON; fail if ``proc`` exits."""

    def ready() -> dict[str, Any] | None:
        assert proc.poll() is None, proc.communicate()[0].decode()
        try:
            response = httpx.get(url, timeout=1)
        except httpx.TransportError:
            return None
        return dict(response.json()) if response.status_code == 200 else None

    return eventually_sync(ready, timeout=timeout, interval=0.05, what=f"{url} ready")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_file_target_admin_only_app_stops_on_signal(tmp_path: Path, signum: int) -> None:
    port = free_port()
    proc = run_cordio(
        str(REPO / "tests" / "apps" / "ticker.py") + ":app",
        tmp_path,
        {"TICKER__ADMIN__PORT": str(port), "TICKER__LOG__FORMAT": "json"},
    )
    body = wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
    assert body["resources"]["clock"]["status"] == "up"
    info = httpx.get(f"http://127.0.0.1:{port}/info").json()
    assert info["name"] == "ticker"
    assert info["version"] == "0.0.1"
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    text = out.decode()
    assert text.index("ticker stopped") < text.index("clock torn down")


@pytest.mark.slow
def test_asgi_mode_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    proc = subprocess.Popen(
        [str(uvicorn), "tests.apps.ticker:app.asgi", "--port", str(port), "--lifespan", "on"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TICKER__LOG__FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    body = wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
    assert body["resources"]["clock"]["status"] == "up"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    text = out.decode()
    # uvicorn (>= 0.29) re-raises the signal after a graceful shutdown: the process ends by it
    assert proc.returncode == -signal.SIGTERM, text
    assert "Application shutdown complete" in text
    assert text.index("ticker stopped") < text.index("clock torn down")
