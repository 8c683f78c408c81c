"""Signals a message handler raises or returns to settle its message itself.

::

    @app.consume("payments")
    async def charge(event: Payment, gateway: Gateway) -> None:
        if await gateway.busy():
            raise Nack(delay=30)           # deliver again in 30 s
        if event.amount <= 0:
            return Reject("non-positive amount")   # dead-letter with this reason
        ...

The same as FastStream's ``AckMessage`` / ``NackMessage`` / ``RejectMessage``. A signal is
not an error: no ``OnError`` rule sees it and no error line is logged beyond one line saying
how the message was settled. A request (``reply_to``) that is acked gets a ``null`` reply;
one that is rejected gets an error reply (422).
"""

from __future__ import annotations

from cordio.outcome import Settle


class Ack(Settle):
    """Acknowledge the message: it is done (also when the handler raised this)."""

    def __init__(self) -> None:
        super().__init__("ack")


class Nack(Settle):
    """Give the message back.

    Args:
        requeue: deliver it again (default); false dead-letters it, as RabbitMQ does with
            ``basic.nack(requeue=false)`` on a queue with a dead-letter exchange.
        delay: seconds before it is delivered again (default ``broker.requeue_delay``).
            Each delivery counts as an attempt: at ``broker.max_attempts`` it is
            dead-lettered.
        reason: why, for the dead-letter headers when not requeued.
    """

    def __init__(
        self, *, requeue: bool = True, delay: float | None = None, reason: str = "nacked"
    ) -> None:
        if delay is not None and delay < 0:
            raise ValueError(f"Nack delay must not be negative, got {delay}")
        super().__init__(f"nack (requeue={requeue})")
        self.requeue = requeue
        self.delay = delay
        self.reason = reason


class Reject(Settle):
    """Dead-letter the message at once with ``reason`` (in the dead-letter headers and the
    log line); it is never delivered again."""

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
