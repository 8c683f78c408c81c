"""A worker app: the MDP service ``echo`` answering with its process id and index."""

from __future__ import annotations

import os
from typing import Any

from cordio import App

app = App("echoworker")


@app.zmq.service("echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "pid": os.getpid(), "index": os.environ.get("CORDIO_WORKER_INDEX")}
