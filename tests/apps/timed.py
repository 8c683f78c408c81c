"""An app whose only handler is a timer: each run notes its start and end in a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cordio import App

app = App("timed")
NOTES = Path(os.environ.get("TIMED_NOTES", "timed-notes.txt"))


def note(word: str) -> None:
    with NOTES.open("a") as notes:
        notes.write(word + "\n")


@app.every(seconds=0.2, start_immediately=True)
async def work() -> None:
    note("start")  # a few bytes to a local file: not worth a thread
    await asyncio.sleep(1.0)  # still running when SIGTERM comes
    note("end")
