"""A broker or a worker as a process of its own, for tests that kill them (``-9``).

::

    python -m tests.zmq.processes broker ENDPOINT HEARTBEAT
    python -m tests.zmq.processes worker ENDPOINT SERVICE HEARTBEAT CLAIM_FILE

The worker answers a request with its process id, except the first request that finds
``CLAIM_FILE`` missing: that one creates it (holding the pid) and never answers, so the
test knows which process to kill in the middle of a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from cordio.zmq.mdp import BrokerOptions, Job, MDPBroker, MDPWorker, WorkerOptions

REPO = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    """The environment a child needs to import this checkout's cordio and tests."""
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.zmq.processes", *args]


async def _until_terminated() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def broker(endpoint: str, heartbeat: float) -> None:
    options = BrokerOptions(heartbeat_interval=heartbeat, max_queued=20_000)
    service = MDPBroker(endpoint, options)
    await service.start()
    print("ready", flush=True)
    await _until_terminated()
    await service.stop()


async def worker(endpoint: str, service: str, heartbeat: float, claim: Path) -> None:
    async def answer(job: Job) -> bytes:
        if job.body[0] == b"claim":
            with contextlib.suppress(FileExistsError):
                descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(descriptor, str(os.getpid()).encode())
                os.close(descriptor)
                await asyncio.Event().wait()  # hold the request until killed
        return str(os.getpid()).encode()

    options = WorkerOptions(heartbeat_interval=heartbeat, reconnect_initial=0.05)
    running = MDPWorker(endpoint, service, answer, options)
    await running.start()
    await _until_terminated()
    await running.stop()


def main(argv: list[str]) -> None:
    if argv[0] == "broker":
        asyncio.run(broker(argv[1], float(argv[2])))
    else:
        asyncio.run(worker(argv[1], argv[2], float(argv[3]), Path(argv[4])))


if __name__ == "__main__":
    main(sys.argv[1:])
