"""A real process with a timer: SIGTERM drains the run in progress, starts no other."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import free_port
from tests.eventually import eventually_sync
from tests.test_lifecycle import REPO, run_cordio


def test_sigterm_drains_a_running_timer_and_starts_no_other(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    proc = run_cordio(
        str(REPO / "tests" / "apps" / "timed.py") + ":app",
        tmp_path,
        {"TIMED_NOTES": str(notes), "TIMED__ADMIN__PORT": str(free_port())},
    )

    def started() -> bool:
        assert proc.poll() is None, proc.communicate()[0].decode()
        return notes.exists() and "start" in notes.read_text()

    eventually_sync(started, timeout=30, interval=0.02, what="the first run")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    # the run in progress finished within the grace period; none started after the signal
    assert notes.read_text().splitlines() == ["start", "end"], out.decode()
    assert "timer work: next run at" in out.decode()
