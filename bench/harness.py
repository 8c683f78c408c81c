"""What the messaging benchmarks share: the payload, a meter for the child process, and the
parent's loop (contenders alternated over rounds in child processes pinned to core 1, the
parent on core 0; medians; a table with CPU time per message; ``ratio:`` lines)."""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel


class Event(BaseModel):
    id: int
    kind: str
    note: str


def body(i: int) -> bytes:
    """Message ``i``: 200 bytes of JSON."""
    text = json.dumps({"id": i, "kind": "order.created", "note": ""})
    return json.dumps({"id": i, "kind": "order.created", "note": "x" * (200 - len(text))}).encode()


class Meter:
    """Counts messages in a child; reports rate and CPU µs per message from the first to
    the last as a JSON line on stdout."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.first_cpu = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        if self.count == 0:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        self.count += 1
        if self.count >= self.n:
            self.done.set()

    def report(self) -> None:
        wall = time.perf_counter() - self.first
        cpu = time.process_time() - self.first_cpu
        print(json.dumps({"rate": (self.n - 1) / wall, "cpu_us": cpu / self.n * 1e6}))


def child(script: str, name: str, n: int) -> dict[str, float]:
    """Run ``script --child name --messages n`` pinned to core 1; its last stdout line
    (JSON)."""
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, script, "--child", name, "--messages", str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def rounds(
    contenders: list[str], run: Callable[[str], dict[str, float]], count: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Run every contender ``count`` times, alternating the order (A/B/C, C/B/A...), with this
    process on core 0. Returns the median rate and CPU µs per message of each."""
    os.sched_setaffinity(0, {0})
    rates: dict[str, list[float]] = {n: [] for n in contenders}
    cpu: dict[str, list[float]] = {n: [] for n in contenders}
    for round_no in range(count):
        order = contenders if round_no % 2 == 0 else list(reversed(contenders))
        for name in order:
            result = run(name)
            rates[name].append(result["rate"])
            cpu[name].append(result["cpu_us"])
        print(
            f"round {round_no + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in contenders),
            flush=True,
        )
    return (
        {n: statistics.median(v) for n, v in rates.items()},
        {n: statistics.median(v) for n, v in cpu.items()},
    )


def report(title: str, rate: dict[str, float], cpu: dict[str, float]) -> None:
    """Print the table and a ``ratio: cordio/PEER X`` line per peer."""
    print(f"\n{title}")
    print(f"{'contender':<11} {'msg/s':>8} {'CPU us/msg':>11}")
    for name in rate:
        print(f"{name:<11} {rate[name]:>8.0f} {cpu[name]:>11.1f}")
    print()
    for name in rate:
        if name != "cordio":
            print(f"ratio: cordio/{name} {rate['cordio'] / rate[name]:.2f}")


def main(
    doc: str,
    children: dict[str, Callable[[int], Awaitable[None]]],
    run_one: Callable[[str, int], dict[str, float]],
    title: str,
    after: Callable[[], None] | None = None,
) -> None:
    """The command line of a benchmark script: ``--child NAME`` runs one contender (in the
    child process); otherwise every contender over ``--rounds`` rounds of ``--messages``,
    then ``after()``, then the report (``title`` formatted with ``messages`` and
    ``rounds``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--child", choices=list(children))
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.child:
        asyncio.run(children[args.child](args.messages))
        return
    rate, cpu = rounds(list(children), lambda name: run_one(name, args.messages), args.rounds)
    if after is not None:
        after()
    report(title.format(messages=args.messages, rounds=args.rounds), rate, cpu)
