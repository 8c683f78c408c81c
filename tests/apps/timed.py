"""An app whose only handler is a timer: each run notes its start and end in a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cordio import App

app = App("timed")
NOTES = Path(os.environ.get("TIMED_NOTES", "timed-notes.txt"))


@app.every(seconds=0.2, start_immediately=True)
async def work() -> None:
    with NOTES.open("a") as notes:
        notes.write("start\n")
    await asyncio.sleep(1.0)  # still running when SIGTERM comes
    with NOTES.open("a") as notes:
        notes.write("end\n")
