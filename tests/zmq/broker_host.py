"""The broker host of ``test_remote_workers.py``, run in its own network namespace::

    python -m tests.zmq.broker_host ENDPOINT KEYS AUTHORIZED HEARTBEAT

Runs the broker an app runs for ``zmq.broker.enabled`` (``BrokerService``), with CURVE: the
server key ``KEYS/server.key_secret``, the public keys in ``AUTHORIZED``; and a client with
the key ``KEYS/client.key_secret``. Prints ``{"ready": [endpoints]}``, then answers each
JSON line on stdin with one on stdout:

- ``{"ask": N}``: ``{"answers": [...]}``, the replies of N requests to ``where``, one after
  the other (an error reply or a timeout is an answer ``{"error": "..."}``);
- ``{"state": true}``: the broker's registered workers, its removals by reason, the ZAP
  handler's refusals by reason, and the refusals it logged (naming the peer's address).

Stops at the end of stdin.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from cordio.zmq.broker import BrokerService
from cordio.zmq.client import ZmqClient
from cordio.zmq.mdp import MDPError
from cordio.zmq.settings import BrokerConfig, CurveConfig, ZmqSettings


class Refusals(logging.Handler):
    """Keeps the messages of the ZAP handler's refusals."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "refused" in message:
            self.messages.append(message)


async def main(endpoint: str, keys: Path, authorized: Path, heartbeat: float) -> None:
    refusals = Refusals()
    curve_log = logging.getLogger("cordio.zmq.curve")
    curve_log.setLevel(logging.INFO)
    curve_log.addHandler(refusals)
    settings = ZmqSettings(
        url=endpoint,
        heartbeat_interval=heartbeat,
        timeout=2.0,
        retries=0,
        broker=BrokerConfig(enabled=True, bind=[endpoint]),
        curve=CurveConfig(
            server_secret_file=str(keys / "server.key_secret"),
            authorized_keys_dir=str(authorized),
            secret_file=str(keys / "client.key_secret"),
            server_public_file=str(keys / "server.key"),
        ),
    )
    service = BrokerService(settings)
    await service.start()
    broker = service.broker
    assert broker is not None
    assert broker.authenticator is not None
    client = ZmqClient.from_settings(settings)
    say({"ready": service.endpoints})
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            if "ask" in command:
                say({"answers": [await ask(client) for _ in range(command["ask"])]})
            else:
                say(
                    {
                        "workers": [dataclasses.asdict(w) for w in broker.workers()],
                        "disconnects": dict(broker.disconnects),
                        "refused": dict(broker.authenticator.refused),
                        "refusals": refusals.messages,
                    }
                )
    finally:
        client.close()
        await service.stop()


async def ask(client: ZmqClient) -> Any:
    try:
        return await client.request("where", {})
    except MDPError as exc:  # an error reply, or RequestTimeout
        return {"error": f"{type(exc).__name__}: {exc}"}


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message, default=lambda value: value.value), flush=True)  # enums


if __name__ == "__main__":
    endpoint, keys, authorized, heartbeat = sys.argv[1:]
    asyncio.run(main(endpoint, Path(keys), Path(authorized), float(heartbeat)))
