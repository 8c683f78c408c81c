"""A consumer service for process tests: ``cordio run tests.messaging.worker_app:app``.

Environment: ``WORKER__BROKER__URL``; ``WORKER_SOURCE`` (queue or subject);
``WORKER_OUT`` (file each handled message id is appended to, flushed before the ack);
``WORKER_DELAY`` (seconds per message, default 0).
"""

from __future__ import annotations

import asyncio
import os

from cordio import App
from cordio.messaging import Message

app = App("worker")
SOURCE = os.environ.get("WORKER_SOURCE", "work")
DELAY = float(os.environ.get("WORKER_DELAY", "0"))
_out = open(os.environ.get("WORKER_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115


@app.consume(SOURCE, max_concurrency=8)
async def handle(message: Message) -> None:
    if DELAY:
        await asyncio.sleep(DELAY)
    _out.write(message.message_id + "\n")  # line-buffered: on disk before the ack
