"""An app consuming one queue, for the ``cordio messaging dead-letters`` commands."""

from __future__ import annotations

from cordio import App

app = App("dl")


@app.consume("dl.jobs")
async def job(payload: dict[str, int]) -> None:
    """Never run by the commands: it makes the app use a broker."""
