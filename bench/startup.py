"""Start-up: process start to the first ``/health/ready`` 200, and import time.

- cordio: an app with one resource and one route, run by ``app.run()``; cordio serves
  ``/health/ready`` itself;
- fastapi: the same app on FastAPI + uvicorn with an equivalent ``/health/ready`` route.

Each process is started pinned to core 1 and polled from core 0 every 5 ms until
``/health/ready`` answers 200. Import time is ``python -c 'import X'`` minus
``python -c pass``. Contenders alternate over ``--rounds`` rounds; medians are reported.
Prints ``ratio: ...`` lines.

Run from the repository root: ``.venv/bin/python bench/startup.py``.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def serve_cordio(port: int) -> None:
    from cordio import App
    from cordio.config import EnvSource

    environ = {"BENCH__HTTP__PORT": str(port), "BENCH__LOG__LEVEL": "WARNING"}
    app = App("bench", config=[EnvSource("bench", environ=environ)])

    @app.resource
    async def store() -> dict[str, int]:
        return {"orders": 0}

    @app.http.get("/orders")
    async def orders(store: dict[str, int]) -> dict[str, int]:
        return store

    app.run()


def serve_fastapi(port: int) -> None:
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> Any:
        state["store"] = {"orders": 0}
        yield

    api = FastAPI(lifespan=lifespan)

    @api.get("/orders")
    async def orders() -> dict[str, int]:
        return dict(state["store"])

    @api.get("/health/ready")
    async def ready() -> dict[str, Any]:
        return {"status": "ready", "resources": {"store": {"status": "up"}}}

    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", access_log=False)


SERVERS = {"cordio": serve_cordio, "fastapi": serve_fastapi}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def time_to_ready(name: str) -> float:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--serve", name, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        while not ready(port):
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}")
            time.sleep(0.005)
        return time.perf_counter() - began
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def import_time(code: str) -> float:
    began = time.perf_counter()
    subprocess.run(["taskset", "-c", "1", sys.executable, "-c", code], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=list(SERVERS))
    parser.add_argument("--port", type=int)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return

    os.sched_setaffinity(0, {0})
    startup: dict[str, list[float]] = {n: [] for n in SERVERS}
    imports: dict[str, list[float]] = {"pass": [], "cordio": [], "cordio.App": [], "fastapi": []}
    codes = {
        "pass": "pass",
        "cordio": "import cordio",
        "cordio.App": "import cordio; cordio.App",
        "fastapi": "import fastapi",
    }
    time_to_ready("cordio")  # warm the file cache
    time_to_ready("fastapi")
    for round_no in range(args.rounds):
        order = list(SERVERS) if round_no % 2 == 0 else list(reversed(SERVERS))
        for name in order:
            startup[name].append(time_to_ready(name))
        for name in codes if round_no % 2 == 0 else reversed(codes):
            imports[name].append(import_time(codes[name]))

    ms = {n: statistics.median(v) * 1000 for n, v in startup.items()}
    base = statistics.median(imports["pass"])
    imp = {n: (statistics.median(v) - base) * 1000 for n, v in imports.items() if n != "pass"}
    print(f"{args.rounds} rounds, medians")
    print(
        f"start to /health/ready 200: cordio {ms['cordio']:.0f} ms, "
        f"fastapi+uvicorn {ms['fastapi']:.0f} ms"
    )
    print(
        f"import (minus interpreter start {base * 1000:.0f} ms): cordio {imp['cordio']:.1f} ms, "
        f"cordio.App {imp['cordio.App']:.1f} ms, fastapi {imp['fastapi']:.1f} ms"
    )
    print()
    print(f"ratio: cordio/fastapi {ms['cordio'] / ms['fastapi']:.2f}")
    print(f"ratio: cordio-import/fastapi-import {imp['cordio'] / imp['fastapi']:.2f}")
    print(f"ratio: cordio-app-import/fastapi-import {imp['cordio.App'] / imp['fastapi']:.2f}")


if __name__ == "__main__":
    main()
