"""Run an example service as a real process (``cordio run``) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.eventually import eventually, eventually_sync

REPO = Path(__file__).resolve().parents[2]
CORDIO = Path(sys.executable).with_name("cordio")


class ServiceProcess:
    """A ``cordio run TARGET`` subprocess with its own environment and working directory.

    Args:
        target: ``pkg.module:app``.
        cwd: working directory (relative SQLite paths land here).
        port: HTTP port.
        env: extra environment variables (``ORDERS__DB__URL``...).
    """

    def __init__(self, target: str, cwd: Path, port: int, env: dict[str, str]) -> None:
        self.target = target
        self.cwd = cwd
        self.port = port
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ORDERS__HTTP__PORT": str(port),
            "ORDERS__LOG__FORMAT": "json",
            "ORDERS__PRICING__STUB_PORT": "0",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"service-{port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(CORDIO), "run", self.target],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"service exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                return httpx.get(self.url + "/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            eventually_sync(ready, timeout=timeout, interval=0.05, what="/health/ready 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    async def wait_in_flight(self, count: int, timeout: float = 10.0) -> None:
        """Poll ``/health/ready`` until ``count`` handler calls are running."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as probe:

            async def running() -> bool:
                in_flight: int = (await probe.get("/health/ready")).json()["in_flight"]
                return in_flight >= count

            await eventually(running, timeout=timeout, what=f"{count} calls in flight")

    async def wait_not_ready(self, timeout: float = 5.0) -> list[int]:
        """Poll ``/health/ready`` until it answers 503 or the port closes; return the
        statuses seen (the last is 503 unless the listener closed first)."""
        seen: list[int] = []
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as probe:

            async def not_ready() -> bool:
                try:
                    seen.append((await probe.get("/health/ready")).status_code)
                except httpx.TransportError:
                    return True
                return seen[-1] == 503

            await eventually(not_ready, timeout=timeout, interval=0.01, what="readiness 503")
        return seen

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
