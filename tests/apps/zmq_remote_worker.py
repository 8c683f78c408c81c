"""A worker app for other hosts: the MDP service ``where`` answering with the address this
host reaches the broker from (its own, on the network between them) and its process id.

Its settings come from the environment (``REMOTE__ZMQ__URL``, ``REMOTE__ZMQ__CURVE__...``),
as a worker's on another host would.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import Any

from cordio import App
from cordio.zmq.settings import ZmqSettings

app = App("remote")


@cache
def source_address(url: str) -> str:
    """The local address of the route to the broker of ``tcp://HOST:PORT`` (a UDP socket
    connects without sending anything)."""
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, int(port)))
        return str(probe.getsockname()[0])


@app.zmq.service("where")
async def where(payload: dict[str, Any], settings: ZmqSettings) -> dict[str, Any]:
    return {"address": source_address(settings.url), "pid": os.getpid()}
