"""ZeroMQ broker throughput: 100-byte echo requests through a broker to 4 worker processes.

Contenders, each a broker process with 4 worker processes of its own, all over
``tcp://127.0.0.1``, loaded with 1 and with 16 concurrent clients:

- ``cordio``: cordio's :class:`~cordio.zmq.mdp.MDPBroker` (MDP/0.1) with 4
  :class:`~cordio.zmq.mdp.MDPWorker` processes (one connection each), loaded by one
  :class:`~cordio.zmq.mdp.MDPClient` with that many requests in flight;
- ``cordio-curve``: the same with CURVE on (broker, workers and client; key pairs made with
  :func:`~cordio.zmq.curve.create_certs` in a temporary directory);
- ``proxy``: a bare ``zmq.proxy`` ROUTER/DEALER device (the ceiling) with plain pyzmq echo
  workers (a blocking REP socket each, on the DEALER side) and asyncio REQ clients;
- ``majortomo``: majortomo's blocking broker (its own MDP/0.2 variant) with its own
  ``Worker`` / ``WorkerRequestsIterator`` and ``Client`` classes (one ``Client`` per
  concurrent request, multiplexed with a ``zmq.Poller``): compared for speed only.

Two cores: every broker is pinned to core 0, alone; its workers and the load generator (a
process per measurement) to core 1 (``taskset``), as is this driver, which sleeps while a
window runs. All contenders are started once and stay up (idle ones only heartbeat); each
measurement runs the load for ``--warmup`` seconds, then counts replies for ``--duration``
seconds, reading the broker's CPU time (``/proc/PID/stat``, all its threads) and the
workers' before and after that window. Contenders alternate over ``--rounds`` rounds (A/B/C/D,
D/C/B/A, ...), both client counts each round, and medians are reported: requests/s, the
broker's CPU µs per request and load (% of its core), the workers' and the load generator's
CPU µs per request, and core 1's load (near 100 %: core 1, not the broker, sets the pace).
Prints ``ratio: cordio/proxy X``, ``ratio: cordio/majortomo X`` and
``ratio: cordio-curve/cordio X`` for each client count. Before each round it waits (up to 10
minutes) while another ``bench/`` script runs, so that one does not disturb the figures.

``--profile`` (``--curve``) runs only cordio's broker, under cProfile for one 16-client window
(its main thread's CPU time, so the wait in epoll and libzmq's I/O thread are left out), and
prints where that time goes per request (cProfile slows it down several times: compare
entries and calls per request, not totals).

Needs ``pip install majortomo six`` (the ``bench`` extra; majortomo 0.2 imports ``six``
without declaring it) and ``taskset`` (util-linux). Run from the repository root:
``.venv/bin/python bench/zmq_broker.py`` (about 4 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTENDERS = ["cordio", "cordio-curve", "proxy", "majortomo"]
CLIENT_COUNTS = (1, 16)
WORKERS = 4
PAYLOAD = bytes(range(100))
SERVICE = b"echo"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPLY_TIMEOUT = 5.0  # seconds: a load that waits longer for a reply fails


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- brokers ---------------------------------------------------------------------------------


def run_broker(kind: str, port: int, backend_port: int, keys: Path | None, profile: str) -> None:
    if kind == "proxy":
        import zmq

        context = zmq.Context()
        frontend = context.socket(zmq.ROUTER)
        frontend.bind(f"tcp://127.0.0.1:{port}")
        backend = context.socket(zmq.DEALER)
        backend.bind(f"tcp://127.0.0.1:{backend_port}")
        zmq.proxy(frontend, backend)
    elif kind == "majortomo":
        from majortomo.broker import Broker

        Broker(bind=f"tcp://127.0.0.1:{port}").run()
    else:
        run_loop(cordio_broker(port, keys, profile))


async def cordio_broker(port: int, keys: Path | None, profile: str) -> None:
    from cordio.zmq.mdp import MDPBroker

    curve = None
    if keys is not None:
        from cordio.zmq.curve import CurveServerConfig

        curve = CurveServerConfig(keys / "server.key_secret", keys / "authorized")
    broker = MDPBroker(f"tcp://127.0.0.1:{port}", curve=curve)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if profile:  # the load generator brackets its window with SIGUSR1 / SIGUSR2
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU of this thread: no idle wait
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
    await stop.wait()
    if profile:
        profiler.disable()
        profiler.dump_stats(profile)
    await broker.stop()


# -- workers ---------------------------------------------------------------------------------


def run_worker(kind: str, endpoint: str, keys: Path | None) -> None:
    if kind == "proxy":
        import zmq

        sock = zmq.Context().socket(zmq.REP)
        sock.connect(endpoint)
        while True:
            sock.send_multipart(sock.recv_multipart())
    elif kind == "majortomo":
        from majortomo import Worker, WorkerRequestsIterator

        requests = WorkerRequestsIterator(Worker(endpoint, SERVICE))
        for request in requests:
            requests.send_reply_final(request)
    else:
        run_loop(cordio_worker(endpoint, keys))


async def cordio_worker(endpoint: str, keys: Path | None) -> None:
    from cordio.zmq.mdp import Job, MDPWorker

    curve = None
    if keys is not None:
        from cordio.zmq.curve import CurveClientConfig

        curve = CurveClientConfig(keys / "worker.key_secret", keys / "server.key")

    async def echo(job: Job) -> tuple[bytes, ...]:
        return job.body

    worker = MDPWorker(endpoint, SERVICE, echo, curve=curve)
    await worker.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.stop()


# -- load generators -------------------------------------------------------------------------


class Window:
    """The measurement window of a load: replies counted, CPU times read at both ends."""

    def __init__(self, broker: int, workers: list[int], signal_broker: bool) -> None:
        self.broker = broker
        self.workers = workers
        self.signal_broker = signal_broker
        self.count = 0
        self.stopping = False
        self.marks: list[tuple[int, float, float, float, float]] = []

    def mark(self) -> None:
        if self.signal_broker:
            os.kill(self.broker, signal.SIGUSR1 if not self.marks else signal.SIGUSR2)
        self.marks.append(
            (
                self.count,
                time.perf_counter(),
                cpu_seconds(self.broker),
                sum(cpu_seconds(pid) for pid in self.workers),
                time.process_time(),
            )
        )

    async def run(self, tasks: list[asyncio.Task[None]], warmup: float, duration: float) -> None:
        await asyncio.sleep(warmup)
        self.mark()
        await asyncio.sleep(duration)
        self.mark()
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), REPLY_TIMEOUT * 2)

    def report(self) -> None:
        (n0, t0, b0, w0, c0), (n1, t1, b1, w1, c1) = self.marks
        print(
            json.dumps(
                {
                    "requests": n1 - n0,
                    "wall": t1 - t0,
                    "broker_cpu": b1 - b0,
                    "workers_cpu": w1 - w0,
                    "client_cpu": c1 - c0,
                }
            )
        )


def check(reply: Any) -> None:
    if reply != [PAYLOAD]:
        raise SystemExit(f"wrong echo: {reply!r:.200}")


async def load_cordio(
    endpoint: str, clients: int, keys: Path | None, window: Window, times: tuple[float, float]
) -> None:
    from cordio.zmq.mdp import ClientOptions, MDPClient

    curve = None
    if keys is not None:
        from cordio.zmq.curve import CurveClientConfig

        curve = CurveClientConfig(keys / "client.key_secret", keys / "server.key")
    options = ClientOptions(timeout=REPLY_TIMEOUT, retries=0, max_sockets=max(64, clients))
    async with MDPClient(endpoint, options, curve=curve) as client:

        async def one() -> None:
            while not window.stopping:
                check(await client.request(SERVICE, PAYLOAD))
                window.count += 1

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await window.run(tasks, *times)


async def load_proxy(
    endpoint: str, clients: int, keys: Path | None, window: Window, times: tuple[float, float]
) -> None:
    import zmq.asyncio

    context = zmq.asyncio.Context()

    async def one() -> None:
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, round(REPLY_TIMEOUT * 1000))
        sock.connect(endpoint)
        try:
            while not window.stopping:
                await sock.send(PAYLOAD)
                check([await sock.recv()])
                window.count += 1
        finally:
            sock.close()

    tasks = [asyncio.create_task(one()) for _ in range(clients)]
    await window.run(tasks, *times)


def load_majortomo(endpoint: str, clients: int, window: Window, times: tuple[float, float]) -> None:
    """majortomo's client is blocking, one request at a time: one ``Client`` per concurrent
    request, their sockets polled together."""
    from majortomo import Client

    import zmq

    warmup, duration = times
    poller = zmq.Poller()
    by_socket = {}
    for _ in range(clients):
        client = Client(endpoint)
        client.connect()
        by_socket[client._socket] = client  # its socket, to poll them all at once
        poller.register(client._socket, zmq.POLLIN)
        client.send(SERVICE, PAYLOAD)
    in_flight = clients
    began = time.perf_counter()
    start, end = began + warmup, began + warmup + duration
    while in_flight:
        ready = poller.poll(REPLY_TIMEOUT * 1000)
        if not ready:
            raise SystemExit(f"majortomo: no reply within {REPLY_TIMEOUT} s")
        for sock, _ in ready:
            client = by_socket[sock]
            check(client.recv_all_as_list(timeout=REPLY_TIMEOUT))
            window.count += 1
            if not window.stopping:
                client.send(SERVICE, PAYLOAD)
            else:
                in_flight -= 1
        now = time.perf_counter()
        if not window.marks and now >= start:
            window.mark()
        elif len(window.marks) == 1 and now >= end:
            window.mark()
            window.stopping = True
    for client in by_socket.values():
        client.close()


def run_load(args: argparse.Namespace, keys: Path | None) -> None:
    workers = [int(pid) for pid in args.worker_pids.split(",")]
    window = Window(args.broker_pid, workers, args.signal_broker)
    times = (args.warmup, args.duration)
    if args.kind == "majortomo":
        load_majortomo(args.endpoint, args.clients, window, times)
    elif args.kind == "proxy":
        run_loop(load_proxy(args.endpoint, args.clients, keys, window, times))
    else:
        run_loop(load_cordio(args.endpoint, args.clients, keys, window, times))
    window.report()


# -- the driver ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def others_running() -> list[str]:
    """Command lines of other ``bench/`` scripts running now."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "bench/" in command and ".py" in command and "zmq_broker.py" not in command:
            found.append(command)
    return found


def wait_until_quiet(limit: float = 600.0, poll: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while others := others_running():
        if time.monotonic() >= deadline:
            print(f"(still running, measuring anyway: {others[0][:80]})", flush=True)
            return
        print(f"(waiting for another benchmark: {others[0][:80]})", flush=True)
        time.sleep(poll)


def run_loop(coro: Any) -> Any:
    """Run ``coro`` on the loop ``--loop`` chose (``CORDIO_BENCH_LOOP`` in the children):
    asyncio's, or uvloop's, which a cordio app runs on when it is installed."""
    if os.environ.get("CORDIO_BENCH_LOOP") == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def pinned(core: int, *args: str) -> list[str]:
    return ["taskset", "-c", str(core), sys.executable, __file__, *args]


@dataclass
class Contender:
    """One broker and its workers, running."""

    kind: str
    keys: Path | None
    port: int = field(default_factory=free_port)
    backend_port: int = field(default_factory=free_port)
    broker: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def key_args(self) -> list[str]:
        return ["--keys", str(self.keys)] if self.keys is not None else []

    def start(self, profile: str = "") -> None:
        base = "cordio" if self.kind.startswith("cordio") else self.kind
        ports = ["--port", str(self.port), "--backend-port", str(self.backend_port)]
        extra = ["--profile-out", profile] if profile else []
        self.broker = subprocess.Popen(
            pinned(0, "--role", "broker", "--kind", base, *ports, *self.key_args(), *extra)
        )
        worker_port = self.backend_port if self.kind == "proxy" else self.port
        endpoint = f"tcp://127.0.0.1:{worker_port}"
        self.workers = [
            subprocess.Popen(
                pinned(1, "--role", "worker", "--kind", base, "--endpoint", endpoint)
                + self.key_args()
            )
            for _ in range(WORKERS)
        ]

    def load(
        self, clients: int, warmup: float, duration: float, signal_broker: bool = False
    ) -> dict[str, float]:
        assert self.broker is not None
        base = "cordio" if self.kind.startswith("cordio") else self.kind
        command = pinned(
            1,
            "--role",
            "load",
            "--kind",
            base,
            "--endpoint",
            f"tcp://127.0.0.1:{self.port}",
            "--clients",
            str(clients),
            "--warmup",
            str(warmup),
            "--duration",
            str(duration),
            "--broker-pid",
            str(self.broker.pid),
            "--worker-pids",
            ",".join(str(w.pid) for w in self.workers),
            *self.key_args(),
            *(["--signal-broker"] if signal_broker else []),
        )
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=warmup + duration + 60
        )
        if out.returncode != 0:
            raise SystemExit(f"{self.kind} load with {clients} clients failed:\n{out.stderr}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        procs = [p for p in [self.broker, *self.workers] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_keys(root: Path) -> Path:
    from cordio.zmq.curve import create_certs

    keys = root / "keys"
    create_certs(keys, server=True, clients=["worker", "client"])
    authorized = keys / "authorized"
    authorized.mkdir()
    for name in ("worker", "client"):
        shutil.copy(keys / f"{name}.key", authorized)
    return keys


Figures = dict[str, float]


def figures(result: dict[str, float]) -> Figures:
    n, wall = result["requests"], result["wall"]
    return {
        "rate": n / wall,
        "broker_us": result["broker_cpu"] / n * 1e6,
        "broker_load": result["broker_cpu"] / wall * 100,
        "workers_us": result["workers_cpu"] / n * 1e6,
        "client_us": result["client_cpu"] / n * 1e6,
        "core1_load": (result["workers_cpu"] + result["client_cpu"]) / wall * 100,
    }


def measure(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    wait_until_quiet()
    root = Path(tempfile.mkdtemp(prefix="cordio-zmq-bench-"))
    contenders = {
        name: Contender(name, make_keys(root) if name == "cordio-curve" else None)
        for name in CONTENDERS
    }
    results: dict[tuple[str, int], list[Figures]] = {
        (name, n): [] for name in CONTENDERS for n in CLIENT_COUNTS
    }
    try:
        for contender in contenders.values():
            contender.start()
        time.sleep(1.0)
        for contender in contenders.values():  # every worker registered, connections made
            contender.load(max(CLIENT_COUNTS), 0.5, 1.0)
        for round_no in range(args.rounds):
            wait_until_quiet()
            names = CONTENDERS if round_no % 2 == 0 else list(reversed(CONTENDERS))
            counts = CLIENT_COUNTS if round_no % 2 == 0 else tuple(reversed(CLIENT_COUNTS))
            for name in names:
                for n in counts:
                    result = contenders[name].load(n, args.warmup, args.duration)
                    results[name, n].append(figures(result))
            for n in CLIENT_COUNTS:
                print(
                    f"round {round_no + 1}, {n:>2} client(s): "
                    + ", ".join(
                        f"{name} {results[name, n][-1]['rate']:.0f}" for name in CONTENDERS
                    ),
                    flush=True,
                )
    finally:
        for contender in contenders.values():
            contender.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n100-byte echo through a broker to {WORKERS} worker processes (tcp); broker on core 0, "
        f"workers and load on core 1; {args.duration:g} s windows, {args.rounds} rounds, medians"
    )
    for n in CLIENT_COUNTS:
        median = {
            name: {
                k: statistics.median(f[k] for f in results[name, n]) for k in results[name, n][0]
            }
            for name in CONTENDERS
        }
        label = f"{n} client" + ("s" if n > 1 else "")
        print(f"\n{label}")
        print(
            f"{'contender':<13} {'req/s':>7} {'broker us/req':>14} {'broker load':>12} "
            f"{'workers us/req':>15} {'client us/req':>14} {'core-1 load':>12}"
        )
        for name in CONTENDERS:
            m = median[name]
            print(
                f"{name:<13} {m['rate']:>7.0f} {m['broker_us']:>14.1f} {m['broker_load']:>11.0f}% "
                f"{m['workers_us']:>15.1f} {m['client_us']:>14.1f} {m['core1_load']:>11.0f}%"
            )
        print()
        rate = {name: median[name]["rate"] for name in CONTENDERS}
        print(f"ratio: cordio/proxy {rate['cordio'] / rate['proxy']:.2f} ({label})")
        print(f"ratio: cordio/majortomo {rate['cordio'] / rate['majortomo']:.2f} ({label})")
        print(f"ratio: cordio-curve/cordio {rate['cordio-curve'] / rate['cordio']:.2f} ({label})")
    print("\ngoals: cordio/proxy >= 0.6, cordio/majortomo >= 1.5, cordio-curve/cordio >= 0.75")


def profile(args: argparse.Namespace) -> None:
    """cordio's broker under cProfile for one window of 16 clients."""
    import pstats

    os.sched_setaffinity(0, {1})
    wait_until_quiet()
    root = Path(tempfile.mkdtemp(prefix="cordio-zmq-profile-"))
    out = root / "broker.prof"
    name = "cordio-curve" if args.curve else "cordio"
    contender = Contender(name, make_keys(root) if args.curve else None)
    try:
        contender.start(profile=str(out))
        time.sleep(1.0)
        contender.load(max(CLIENT_COUNTS), 0.5, 1.0)
        result = contender.load(max(CLIENT_COUNTS), args.warmup, args.duration, signal_broker=True)
    finally:
        contender.stop()
    n = result["requests"]
    print(
        f"{name} broker under cProfile, {max(CLIENT_COUNTS)} clients, {args.duration:g} s: "
        f"{n / result['wall']:.0f} req/s, {result['broker_cpu'] / n * 1e6:.1f} us CPU/req"
    )
    stats = pstats.Stats(str(out))
    rows = []
    for (path, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, calls, f"{Path(path).name}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"\n{'tottime us/req':>14} {'cumtime us/req':>14} {'calls/req':>9}  function")
    for tottime, cumtime, calls, where in rows[:30]:
        print(f"{tottime / n * 1e6:>14.2f} {cumtime / n * 1e6:>14.2f} {calls / n:>9.2f}  {where}")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per load")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of load before that")
    parser.add_argument("--profile", action="store_true", help="cProfile cordio's broker")
    parser.add_argument("--curve", action="store_true", help="with --profile: CURVE on")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default=os.environ.get("CORDIO_BENCH_LOOP", "asyncio"),
        help="event loop of the asyncio processes (cordio's broker, workers, load)",
    )
    # the child processes
    parser.add_argument("--role", choices=["broker", "worker", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["cordio", "proxy", "majortomo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--broker-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-pids", help=argparse.SUPPRESS)
    parser.add_argument("--signal-broker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["CORDIO_BENCH_LOOP"] = args.loop  # inherited by the child processes
    if args.role == "broker":
        run_broker(args.kind, args.port, args.backend_port, args.keys, args.profile_out)
    elif args.role == "worker":
        run_worker(args.kind, args.endpoint, args.keys)
    elif args.role == "load":
        run_load(args, args.keys)
    elif args.profile:
        profile(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
