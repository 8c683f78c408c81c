"""HTTP overhead: ``GET /ping`` with three injected resources, cordio against its peers.

Contenders, one uvicorn process each (httptools, uvloop, access log off):

- ``cordio``: three resources (one depending on another) injected by type;
- ``starlette``: bare Starlette, the three objects read from module globals;
- ``fastapi``: FastAPI with a three-deep chain of async ``Depends``;
- ``raw-asgi``: an ASGI callable sending a fixed body (the ceiling).

The server is pinned to core 1 and ``wrk`` to core 0 (``taskset``); contenders alternate over
``--rounds`` rounds and the median is reported, with the server's CPU time per request from
``/proc/PID/stat``. Prints ``ratio: cordio/PEER X`` lines.

Run from the repository root: ``.venv/bin/python bench/http_overhead.py``.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

CONTENDERS = ["cordio", "starlette", "fastapi", "raw-asgi"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the servers ---------------------------------------------------------------------------


class Config:
    greeting = "pong"


class Database:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.rows = 3


class Cache:
    hits = 2


def serve_cordio(port: int) -> None:
    from cordio import App
    from cordio.config import EnvSource

    environ = {
        "BENCH__HTTP__PORT": str(port),
        "BENCH__LOG__LEVEL": "WARNING",
        "BENCH__HTTP__ACCESS_LOG": "false",  # as the peers: uvicorn access_log=False
        "BENCH__HTTP__MAX_CONNECTIONS": "10000",
    }
    app = App("bench", config=[EnvSource("bench", environ=environ)])

    @app.resource
    def config() -> Config:
        return Config()

    @app.resource
    async def database(config: Config) -> Database:
        return Database(config)

    @app.resource
    def cache() -> Cache:
        return Cache()

    @app.http.get("/ping")
    async def ping(db: Database, cache: Cache, config: Config) -> dict[str, Any]:
        return {"message": config.greeting, "n": db.rows + cache.hits}

    app.run()


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        limit_concurrency=10000,
    )


def serve_starlette(port: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    config = Config()
    db = Database(config)
    cache = Cache()

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"message": config.greeting, "n": db.rows + cache.hits})

    _uvicorn(Starlette(routes=[Route("/ping", ping)]), port)


def serve_fastapi(port: int) -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI

    api = FastAPI()

    async def get_config() -> Config:
        return Config()

    async def get_db(config: Annotated[Config, Depends(get_config)]) -> Database:
        return Database(config)

    async def get_cache(db: Annotated[Database, Depends(get_db)]) -> Cache:
        return Cache()

    @api.get("/ping")
    async def ping(
        cache: Annotated[Cache, Depends(get_cache)],
        db: Annotated[Database, Depends(get_db)],
        config: Annotated[Config, Depends(get_config)],
    ) -> dict[str, Any]:
        return {"message": config.greeting, "n": db.rows + cache.hits}

    _uvicorn(api, port)


def serve_raw(port: int) -> None:
    body = b'{"message":"pong","n":5}'
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"24")],
    }
    done = {"type": "http.response.body", "body": body}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        await send(done)

    _uvicorn(app, port)


SERVERS = {
    "cordio": serve_cordio,
    "starlette": serve_starlette,
    "fastapi": serve_fastapi,
    "raw-asgi": serve_raw,
}


# -- the driver -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start(name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--serve", name, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/ping"
    for _ in range(400):
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200 and response.read().startswith(b"{"):
                    return proc, port
        except OSError:
            time.sleep(0.025)
    proc.kill()
    raise SystemExit(f"{name} did not answer /ping")


def load(port: int, duration: float, connections: int) -> int:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            f"http://127.0.0.1:{port}/ping",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or errors is not None:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=CONTENDERS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return

    procs = {}
    try:
        for name in CONTENDERS:
            procs[name] = start(name)
        for _, port in procs.values():
            load(port, 1, args.connections)  # warm-up
        rates: dict[str, list[float]] = {n: [] for n in CONTENDERS}
        cpu: dict[str, list[float]] = {n: [] for n in CONTENDERS}
        for round_no in range(args.rounds):
            order = CONTENDERS if round_no % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                proc, port = procs[name]
                before = cpu_seconds(proc.pid)
                requests = load(port, args.duration, args.connections)
                used = cpu_seconds(proc.pid) - before
                rates[name].append(requests / args.duration)
                cpu[name].append(used / requests * 1e6)
            print(
                f"round {round_no + 1}: "
                + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in CONTENDERS),
                flush=True,
            )
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    median = {n: statistics.median(rates[n]) for n in CONTENDERS}
    print(
        f"\nGET /ping, wrk -t1 -c{args.connections} -d{args.duration:g}s, "
        f"{args.rounds} rounds, medians"
    )
    print(f"{'contender':<10} {'req/s':>10} {'CPU us/req':>11}")
    for name in CONTENDERS:
        print(f"{name:<10} {median[name]:>10.0f} {statistics.median(cpu[name]):>11.1f}")
    print()
    for peer in ("starlette", "fastapi", "raw-asgi"):
        print(f"ratio: cordio/{peer} {median['cordio'] / median[peer]:.2f}")


if __name__ == "__main__":
    main()
