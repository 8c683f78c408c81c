"""Timers: ``--ticks`` ticks of a 10 ms periodic timer with an empty handler; lateness and
CPU time per tick.

Contenders, each in a process of its own pinned to core 1 (this process on core 0), on the
same event loop (``--loop``, default the stdlib's asyncio loop), alternating over
``--rounds`` rounds (A/B/C, C/B/A, ...); medians of the rounds:

- ``cordio``: ``@app.every(seconds=0.01)`` inside ``app.running(serve=False)`` (a handler
  without parameters, logging at WARNING);
- ``aiomisc``: a ``PeriodicService(interval=0.01, delay=0.01)`` inside
  ``aiomisc.entrypoint(service, log_config=False)`` entered on the running loop;
- ``sleep-loop``: the floor, ``while True: await asyncio.sleep(...)`` sleeping until the
  next point of a 10 ms grid on the monotonic clock, then calling the handler.

Every handler does the same: it appends ``time.monotonic()`` to a list; the child stops
after ``--ticks`` + 1 calls, so there are ``--ticks`` gaps. Figures per contender:

- lateness per tick: the gap between consecutive calls minus 10 ms (median and p99, ms);
  the ``ratio:`` lines use its p99;
- the worst gap minus 10 ms (ms), how many gaps exceed 10 ms by more than 2 ms, and the
  time lost: the length of the run (first call to
  last) minus ``--ticks`` x 10 ms (ms). A fixed-delay timer (aiomisc sleeps 10 ms after
  each run has ended) loses its lateness at every tick; a fixed-rate one does not, except
  that cordio (``missed="skip"``) runs once for all the 10 ms slots that went by while the
  process could not run, so each such stall loses a whole slot; the sleep loop calls at
  once for every slot that went by (it catches up);
- CPU per tick: ``time.process_time()`` of the child from the first call to the last,
  divided by ``--ticks`` (µs).

Prints a table, the counters of cordio's timer summed over the rounds (slots counted as
missed, runs skipped as overlapping), ``ratio: cordio/aiomisc lateness-p99 X``,
``ratio: cordio/aiomisc cpu X`` and the same against ``sleep-loop``.

Needs the peer: ``pip install aiomisc`` (the ``bench`` extra); ``--loop uvloop`` needs
uvloop (the ``speed`` extra). Run from the repository root: ``.venv/bin/python bench/timers.py``.
"""

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

INTERVAL = 0.01
CONTENDERS = ["cordio", "aiomisc", "sleep-loop"]


class Recorder:
    """The handler's body: records the monotonic time of each call, and the CPU time of
    the process at the first and the last; ``done`` is set after ``ticks`` + 1 calls."""

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks
        self.stamps: list[float] = []
        self.cpu = [0.0, 0.0]
        self.done = asyncio.Event()
        self.counters: dict[str, int] = {}

    def hit(self) -> None:
        stamps = self.stamps
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            self.cpu[0] = time.process_time()
        elif len(stamps) == self.ticks + 1:
            self.cpu[1] = time.process_time()
            self.done.set()

    def report(self) -> None:
        """Print the figures of this run as a JSON line on stdout."""
        stamps = self.stamps[: self.ticks + 1]
        late = [(b - a - INTERVAL) * 1e3 for a, b in itertools.pairwise(stamps)]
        print(
            json.dumps(
                {
                    "late_median": statistics.median(late),
                    "late_p99": p99(late),
                    "late_max": max(late),
                    "over_2ms": sum(1 for x in late if x > 2.0),
                    "lost": (stamps[-1] - stamps[0] - self.ticks * INTERVAL) * 1e3,
                    "cpu_us": (self.cpu[1] - self.cpu[0]) / self.ticks * 1e6,
                    **self.counters,
                }
            )
        )


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def run_cordio(rec: Recorder) -> None:
    from cordio import App
    from cordio.config import EnvSource
    from cordio.timers import TimerService

    environ = {"BENCH__LOG__LEVEL": "WARNING", "BENCH__ADMIN__ENABLED": "false"}
    app = App("bench", config=[EnvSource("bench", environ=environ)])

    @app.every(seconds=INTERVAL)
    async def tick() -> None:
        rec.hit()

    async with app.running(serve=False) as runtime:
        await rec.done.wait()
        (service,) = [s for s in runtime.services if isinstance(s, TimerService)]
        rec.counters = {"missed": service.missed, "skipped": service.skipped}


async def run_aiomisc(rec: Recorder) -> None:
    import aiomisc
    from aiomisc.service.periodic import PeriodicService

    class Tick(PeriodicService):
        async def callback(self) -> None:
            rec.hit()

    service = Tick(interval=INTERVAL, delay=INTERVAL)
    async with aiomisc.entrypoint(service, log_config=False):
        await rec.done.wait()


async def run_sleep_loop(rec: Recorder) -> None:
    async def tick() -> None:
        rec.hit()

    async def loop() -> None:
        due = time.monotonic()
        while True:
            due += INTERVAL
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await tick()

    task = asyncio.get_running_loop().create_task(loop())
    await rec.done.wait()
    task.cancel()


CHILDREN: dict[str, Callable[[Recorder], Awaitable[None]]] = {
    "cordio": run_cordio,
    "aiomisc": run_aiomisc,
    "sleep-loop": run_sleep_loop,
}


def run_child(name: str, ticks: int, loop: str) -> None:
    rec = Recorder(ticks)
    if loop == "uvloop":
        import uvloop

        uvloop.run(CHILDREN[name](rec))
    else:
        asyncio.run(CHILDREN[name](rec))
    rec.report()


def child(name: str, ticks: int, loop: str) -> dict[str, float]:
    """Run one contender pinned to core 1; its last stdout line (JSON)."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            sys.executable,
            __file__,
            "--child",
            name,
            "--ticks",
            str(ticks),
            "--loop",
            loop,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


FIGURES = ["late_median", "late_p99", "late_max", "over_2ms", "lost", "cpu_us"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=CONTENDERS)
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.ticks, args.loop)
        return
    os.sched_setaffinity(0, {0})
    results: dict[str, dict[str, list[float]]] = {n: {f: [] for f in FIGURES} for n in CONTENDERS}
    counters = {"missed": 0, "skipped": 0}
    for round_no in range(args.rounds):
        order = CONTENDERS if round_no % 2 == 0 else list(reversed(CONTENDERS))
        for name in order:
            result = child(name, args.ticks, args.loop)
            for figure in FIGURES:
                results[name][figure].append(result[figure])
            for counter in counters:
                counters[counter] += int(result.get(counter, 0))
        print(
            f"round {round_no + 1}: "
            + ", ".join(
                f"{n} p99 {results[n]['late_p99'][-1]:.3f} ms {results[n]['cpu_us'][-1]:.1f} us"
                for n in CONTENDERS
            ),
            flush=True,
        )
    median = {n: {f: statistics.median(v) for f, v in r.items()} for n, r in results.items()}
    print(
        f"\n{args.ticks} ticks of a {INTERVAL * 1e3:.0f} ms timer x {args.rounds} rounds "
        f"({args.loop} loop), medians"
    )
    print(
        f"{'contender':<11} {'late med ms':>11} {'late p99 ms':>11} {'late max ms':>11} "
        f"{'> 2 ms':>6} {'lost ms':>9} {'CPU us/tick':>11}"
    )
    for name in CONTENDERS:
        m = median[name]
        print(
            f"{name:<11} {m['late_median']:>11.3f} {m['late_p99']:>11.3f} "
            f"{m['late_max']:>11.3f} {m['over_2ms']:>6.0f} {m['lost']:>9.1f} {m['cpu_us']:>11.1f}"
        )
    print(
        f"cordio's timer, all rounds: {counters['missed']} slot(s) counted as missed, "
        f"{counters['skipped']} run(s) skipped as overlapping"
    )
    print()
    cordio = median["cordio"]
    for peer in ("aiomisc", "sleep-loop"):
        late = cordio["late_p99"] / median[peer]["late_p99"]
        print(f"ratio: cordio/{peer} lateness-p99 {late:.2f}")
        print(f"ratio: cordio/{peer} cpu {cordio['cpu_us'] / median[peer]['cpu_us']:.2f}")


if __name__ == "__main__":
    main()
