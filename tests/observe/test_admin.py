"""Admin endpoints: liveness, readiness with resource checks, info, the admin-only server."""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import cordio
from cordio import App
from cordio.config import EnvSource
from cordio.observe.admin import git_sha
from cordio.testing import TestApp


class Db:
    healthy = True

    async def ping(self) -> bool:
        return self.healthy


def make_app(**settings: str) -> App:
    environ = {f"SVC__{k}": v for k, v in settings.items()}
    app = App("svc", version="3.2.1", config=[EnvSource("svc", environ=environ)])

    async def check(db: Db) -> bool:
        return await db.ping()

    @app.resource(check=check)
    async def db() -> AsyncIterator[Db]:
        yield Db()

    @app.http.get("/")
    async def root(db: Db) -> str:
        return "ok"

    return app


async def test_live_and_ready() -> None:
    async with TestApp(make_app()) as client:
        assert (await client.get("/health/live")).json() == {"status": "alive"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "in_flight": 0,
            "resources": {"db": {"status": "up", "detail": "up"}},
        }


async def test_failing_check_turns_readiness_503() -> None:
    app = make_app()
    async with TestApp(app) as client:
        app.get(Db).healthy = False
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["status"] == "down"
        assert down.json()["resources"]["db"] == {
            "status": "down",
            "detail": "check returned False",
        }
        assert (await client.get("/health/live")).status_code == 200
        app.get(Db).healthy = True
        assert (await client.get("/health/ready")).status_code == 200


async def test_raising_and_slow_checks_are_down() -> None:
    app = App("svc")

    async def raises(value: str) -> None:
        raise ConnectionResetError("gone")

    async def slow(value: str) -> None:
        import asyncio

        await asyncio.Event().wait()

    app.resource("a", name="broken", check=raises)
    app.resource("b", name="stuck", check=slow, check_timeout=0.01)

    @app.http.get("/")
    async def root(broken: str, stuck: str) -> str:
        return broken + stuck

    async with TestApp(app) as client:
        body = (await client.get("/health/ready")).json()
    assert body["resources"]["broken"] == {
        "status": "down",
        "detail": "check failed: ConnectionResetError",
    }
    assert body["resources"]["stuck"]["detail"] == "check timed out after 0.01 s"


async def test_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_SHA", "abc123")
    async with TestApp(make_app()) as client:
        info = (await client.get("/info")).json()
    assert info == {
        "name": "svc",
        "version": "3.2.1",
        "python": platform.python_version(),
        "cordio": cordio.__version__,
        "git_sha": "abc123",
    }


async def test_admin_only_server_when_there_are_no_routes() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__ADMIN__PORT": "0"})])
    app.resource(1, name="one")
    async with app.running() as runtime:
        (server,) = runtime.services
        assert server.name == "admin"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/info")).json()["name"] == "svc"


async def test_admin_can_be_disabled() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__ADMIN__ENABLED": "false"})])
    async with app.running() as runtime:
        assert runtime.services == []


def test_git_sha_from_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_SHA", raising=False)
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("1" * 40 + "\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert git_sha(nested) == "1" * 40
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text("# pack-refs\n" + "2" * 40 + " refs/heads/main\n")
    assert git_sha(tmp_path) == "2" * 40
    (git / "HEAD").write_text("3" * 40 + "\n")  # detached
    assert git_sha(tmp_path) == "3" * 40
    assert git_sha(Path("/")) is None


async def test_hung_checks_run_concurrently_and_liveness_runs_none() -> None:
    """Spring Boot #2652 / #43449: one hung dependency must not hang readiness, and
    liveness never waits on dependency checks."""
    import asyncio
    import time

    app = App("svc")
    entered = asyncio.Event()
    calls = 0

    async def hangs(value: str) -> None:
        nonlocal calls
        calls += 1
        entered.set()
        await asyncio.Event().wait()

    for name in ("db", "cache", "queue"):
        app.resource(name, name=name, check=hangs, check_timeout=0.3)

    @app.http.get("/")
    async def root(db: str, cache: str, queue: str) -> str:
        return db + cache + queue

    async with TestApp(app) as client:
        started = time.monotonic()
        ready = asyncio.create_task(client.get("/health/ready"))
        await entered.wait()
        live = await client.get("/health/live")  # while three checks hang
        assert live.status_code == 200
        assert calls == 3  # all three started at once; liveness started none
        answer = await ready
        took = time.monotonic() - started
    assert answer.status_code == 503
    assert took < 0.85  # concurrent: not 3 x 0.3 s
