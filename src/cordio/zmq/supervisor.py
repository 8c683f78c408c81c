"""Local worker processes: started with the app, restarted when they die, scaled at run time.

With ``zmq.workers.auto_start``, the app runs ``zmq.workers.count`` processes of
``cordio run <zmq.workers.target>`` (an app whose ``@app.zmq.service`` handlers connect to
the broker), each told its number in ``CORDIO_WORKER_INDEX``. A process that exits while the
app runs is started again after a delay that doubles from ``restart_initial`` up to
``restart_max`` seconds (and starts over once a process has lived a minute). At shutdown
every process gets SIGTERM — its own shutdown sends DISCONNECT to the broker and drains the
request in progress — and SIGKILL after ``stop_timeout`` seconds.

The supervising app also serves the MDP service ``cordio.workers`` (methods ``scale(n)`` and
``list()``), which ``cordio zmq workers scale N`` and ``cordio zmq workers list`` call
through the broker (with CURVE, only authorized keys can).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("cordio.zmq.workers")

#: The MDP service through which a supervisor is scaled and listed.
CONTROL_SERVICE = "cordio.workers"
#: The most worker processes one supervisor runs.
MAX_PROCESSES = 1024
#: Seconds a process must live for its restart delay to start over.
STABLE_AFTER = 60.0


@dataclass
class _Process:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    delay: float = 0.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    retired: bool = False


class WorkerSupervisor:
    """Runs and supervises local worker processes.

    Args:
        target: the worker app, as ``cordio run`` takes it (``pkg.module:app``).
        count: processes to run.
        restart_initial: seconds before the first restart of a process that died.
        restart_max: the longest restart delay, in seconds.
        stop_timeout: seconds a process gets after SIGTERM before SIGKILL.
        env: environment of the processes (default: this process's).

    Attributes:
        restarts: processes started again after they died.
    """

    def __init__(
        self,
        target: str,
        count: int,
        *,
        restart_initial: float = 0.5,
        restart_max: float = 30.0,
        stop_timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if not target:
            raise ValueError("zmq.workers.target names no app ('pkg.module:app')")
        if count < 0:
            raise ValueError("a worker count cannot be negative")
        self.target = target
        self.count = count
        self.restart_initial = restart_initial
        self.restart_max = restart_max
        self.stop_timeout = stop_timeout
        self.env = dict(os.environ if env is None else env)
        self.restarts = 0
        self._processes: dict[int, _Process] = {}
        self._stopping = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<WorkerSupervisor {self.target} x{self.count}>"

    async def start(self) -> None:
        """Start ``count`` processes (not waiting for them to register)."""
        async with self._lock:
            for index in range(self.count):
                await self._launch(index)
        log.info("started %d worker process(es) of %s", self.count, self.target)

    async def scale(self, count: int) -> list[dict[str, Any]]:
        """Run ``count`` processes: start the missing ones, stop the extra ones (highest
        numbers first, gracefully); return :meth:`list`.

        Raises:
            ValueError: a count below 0 or over :data:`MAX_PROCESSES`.
        """
        if not 0 <= count <= MAX_PROCESSES:
            raise ValueError(f"a worker count is from 0 to {MAX_PROCESSES}, not {count}")
        async with self._lock:
            running = sorted(i for i, p in self._processes.items() if not p.retired)
            for _ in range(len(running), count):
                await self._launch(self._free_index())
            extra = running[count:] if count < len(running) else []
            await asyncio.gather(*(self._retire(self._processes[i]) for i in extra))
            self.count = count
        log.info("worker processes of %s scaled to %d", self.target, count)
        return self.list()

    def list(self) -> list[dict[str, Any]]:
        """The processes: ``index``, ``pid``, ``alive``, ``restarts``, ``uptime`` (s)."""
        now = time.monotonic()
        return [
            {
                "index": p.index,
                "pid": p.proc.pid if p.proc else None,
                "alive": p.proc is not None and p.proc.returncode is None,
                "restarts": p.restarts,
                "uptime": round(now - p.started, 3) if p.proc else 0.0,
            }
            for p in sorted(self._processes.values(), key=lambda p: p.index)
            if not p.retired
        ]

    async def stop(self) -> None:
        """SIGTERM every process, SIGKILL what is left after ``stop_timeout``."""
        self._stopping = True
        async with self._lock:
            await asyncio.gather(*(self._retire(p) for p in list(self._processes.values())))
            self._processes.clear()

    # -- processes ------------------------------------------------------------------------

    def _free_index(self) -> int:
        index = 0
        while index in self._processes:
            index += 1
        return index

    async def _launch(self, index: int) -> None:
        entry = self._processes.get(index) or _Process(index)
        self._processes[index] = entry
        await self._spawn(entry)
        entry.watcher = asyncio.get_running_loop().create_task(
            self._watch(entry), name=f"cordio.zmq.worker-process:{index}"
        )

    async def _spawn(self, entry: _Process) -> None:
        env = {**self.env, "CORDIO_WORKER_INDEX": str(entry.index)}
        entry.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cordio", "run", self.target, env=env
        )
        entry.started = time.monotonic()
        log.info(
            "worker process %d of %s started (pid %d)", entry.index, self.target, entry.proc.pid
        )

    async def _watch(self, entry: _Process) -> None:
        while True:
            assert entry.proc is not None
            code = await entry.proc.wait()
            if self._stopping or entry.retired:
                return
            lived = time.monotonic() - entry.started
            if lived >= STABLE_AFTER:
                entry.delay = 0.0
            entry.delay = min(self.restart_max, max(self.restart_initial, entry.delay * 2))
            log.warning(
                "worker process %d of %s (pid %d) exited with %d after %.1f s; again in %.1f s",
                entry.index,
                self.target,
                entry.proc.pid,
                code,
                lived,
                entry.delay,
            )
            await asyncio.sleep(entry.delay)
            if self._stopping or entry.retired:
                return
            entry.restarts += 1
            self.restarts += 1
            await self._spawn(entry)

    async def _retire(self, entry: _Process) -> None:
        entry.retired = True
        if entry.watcher is not None:
            entry.watcher.cancel()
        proc = entry.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout)
            except TimeoutError:
                log.warning(
                    "worker process %d (pid %d) ignored SIGTERM; killed", entry.index, proc.pid
                )
                proc.kill()
                await proc.wait()
        self._processes.pop(entry.index, None)
