"""Messages of an AMQP consumer handed to worker threads and back through a ZeroMQ relay.

The ``digest_text`` consumer takes each request on ``text.digest``, hands its text to a
:class:`~cordio.zmq.relay.Relay` whose threads run :func:`digest` (blocking code: a key
derivation in C, which lets the threads run in parallel), awaits the result and replies with
it. A text :func:`digest` refuses comes back as an error reply (422). On embedded defaults
the broker is the in-process one::

    cordio run examples.relay_amqp:app

and RabbitMQ by changing one setting::

    DIGESTS__BROKER__URL=amqp://guest:guest@127.0.0.1:5672/ cordio run examples.relay_amqp:app

Ask it from another process (or a test on the memory broker)::

    reply = await publisher.request("text.digest", Text(text="tea"), returns=Digest)

The relay is a resource: started before the consumer, stopped after the consumer's calls
have been drained at shutdown (so no thread and no socket outlives the app). Its threads and
the work per text are settings: ``digest.threads``, ``digest.rounds``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from cordio import App, Settings
from cordio.policy import respond
from cordio.zmq.relay import ProcessingError, Relay, RelayOptions


class DigestSettings(Settings, section="digest"):
    """How texts are digested."""

    threads: int = Field(2, ge=1, le=64, description="threads of the relay")
    rounds: int = Field(10_000, ge=1, le=10_000_000, description="PBKDF2 rounds per text")


class Text(BaseModel):
    """A request on ``text.digest``."""

    text: str = Field(max_length=10_000, description="the text to digest")


class Digest(BaseModel):
    """The reply: the digest, and the relay thread that made it."""

    digest: str = Field(description="PBKDF2-SHA256 of the text, hex")
    thread: str = Field(description="the thread that computed it")


def digest(item: dict[str, Any]) -> dict[str, str]:
    """Runs in a relay thread: ``{"text", "rounds"}`` in, ``{"digest", "thread"}`` out.

    Raises:
        ValueError: a blank text (it comes back to the consumer as a ProcessingError).
    """
    text = item["text"]
    if not text.strip():
        raise ValueError("a blank text has nothing to digest")
    key = hashlib.pbkdf2_hmac("sha256", text.encode(), b"cordio-example", item["rounds"])
    return {"digest": key.hex(), "thread": threading.current_thread().name}


async def relay(settings: DigestSettings) -> AsyncIterator[Relay]:
    """The relay to the digest threads, for the app's lifetime."""
    options = RelayOptions(threads=settings.threads, hwm=16)
    async with Relay(digest, options, name="digest") as running:
        yield running


async def digest_text(request: Text, relay: Relay, settings: DigestSettings) -> Digest:
    """Hand the text to a relay thread, await its digest, reply with it."""
    done = await relay.call({"text": request.text, "rounds": settings.rounds})
    return Digest.model_validate(done)


app = App("digests", version="1.0.0")
app.resource(relay)
app.consume("text.digest", max_concurrency=32)(digest_text)
app.on_error({ProcessingError: respond(422, title="Cannot digest this text", detail=True)})
