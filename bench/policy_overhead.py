"""Policy overhead on the success path: ns per call of a no-op async function.

Contenders, in one process pinned to one core, alternating over ``--rounds`` rounds of
``--calls`` calls each (medians):

- bare call;
- cordio ``Retry``, ``CircuitBreaker``, and both;
- tenacity's ``retry`` decorator (``AsyncRetrying``);
- aiomisc ``asyncretry``;
- purgatory's and aiobreaker's circuit breakers.

Prints the ns figures and ``ratio: cordio-retry/tenacity X`` (on the overhead over the
bare call), plus the overhead of cordio Retry + CircuitBreaker together.

Needs the peers: ``pip install aiomisc purgatory aiobreaker`` (the ``bench`` extra).
Run from the repository root: ``.venv/bin/python bench/policy_overhead.py``.
"""

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cordio.policy import CircuitBreaker, Retry


async def noop() -> int:
    return 1


def contenders() -> dict[str, Callable[[], Awaitable[Any]]]:
    import aiobreaker
    import tenacity
    from aiomisc import asyncretry
    from purgatory import AsyncCircuitBreakerFactory

    both = CircuitBreaker("both")(Retry()(noop))
    purgatory_factory = AsyncCircuitBreakerFactory()

    async def purgatory_call() -> int:
        async with await purgatory_factory.get_breaker("bench"):
            return await noop()

    return {
        "bare": noop,
        "cordio-retry": Retry()(noop),
        "cordio-breaker": CircuitBreaker("bench")(noop),
        "cordio-retry+breaker": both,
        "tenacity": tenacity.retry(stop=tenacity.stop_after_attempt(3))(noop),
        "aiomisc-asyncretry": asyncretry(max_tries=3, exceptions=(OSError,))(noop),
        "purgatory": purgatory_call,
        "aiobreaker": aiobreaker.CircuitBreaker()(noop),
    }


async def measure(func: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    began, began_cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await func()
    return (
        (time.perf_counter() - began) / calls * 1e9,
        (time.process_time() - began_cpu) / calls * 1e9,
    )


async def main(rounds: int, calls: int) -> None:
    funcs = contenders()
    wall: dict[str, list[float]] = {n: [] for n in funcs}
    cpu: dict[str, list[float]] = {n: [] for n in funcs}
    for func in funcs.values():
        await measure(func, 1000)  # warm up
    for round_no in range(rounds):
        order = list(funcs) if round_no % 2 == 0 else list(reversed(funcs))
        for name in order:
            w, c = await measure(funcs[name], calls)
            wall[name].append(w)
            cpu[name].append(c)
    median = {n: statistics.median(v) for n, v in wall.items()}
    print(f"{rounds} rounds x {calls} calls, medians")
    print(f"{'contender':<22} {'ns/call':>10} {'CPU ns/call':>12} {'overhead ns':>12}")
    for name in funcs:
        overhead = median[name] - median["bare"]
        print(
            f"{name:<22} {median[name]:>10.0f} {statistics.median(cpu[name]):>12.0f} "
            f"{overhead:>12.0f}"
        )
    bare = median["bare"]
    ratio = (median["cordio-retry"] - bare) / (median["tenacity"] - bare)
    print()
    print(f"ratio: cordio-retry/tenacity {ratio:.3f}")
    print(
        f"ratio: cordio-retry/aiomisc-asyncretry "
        f"{(median['cordio-retry'] - bare) / (median['aiomisc-asyncretry'] - bare):.3f}"
    )
    print(
        f"ratio: cordio-breaker/purgatory "
        f"{(median['cordio-breaker'] - bare) / (median['purgatory'] - bare):.3f}"
    )
    print(
        f"ratio: cordio-breaker/aiobreaker "
        f"{(median['cordio-breaker'] - bare) / (median['aiobreaker'] - bare):.3f}"
    )
    print(f"cordio retry+breaker overhead: {(median['cordio-retry+breaker'] - bare) / 1000:.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    asyncio.run(main(args.rounds, args.calls))
