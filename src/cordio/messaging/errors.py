"""The errors messaging raises, in one place.

- :class:`PublishError` (a ``ConnectionError``): a publish was not confirmed; its subclass
  :class:`InvalidMessage` (also a ``ValueError``): a message that can never be published as
  given.
- :class:`PoisonMessage`: a received message that can never be handled.
- :class:`RemoteError` and :class:`RequestTimeout`: a request's error reply, or none in time.
- :class:`DeadLetterError`: a dead-letter queue that cannot be read.

Each is also importable from the module that raises it (``cordio.messaging.connection``,
``.codec``, ``.rpc``, ``.deadletters``) and from :mod:`cordio.messaging`.
"""

from __future__ import annotations


class PublishError(ConnectionError):
    """A publish was not confirmed by the broker: it is down or closed, did not confirm
    within ``broker.publish_timeout``, the buffer of waiting publishes
    (``broker.publish_buffer``) is full, or the broker refused the message or could not
    route it. A ``ConnectionError``: a dependency failure to policies (a breaker counts it, a
    retry tries again). The client library's exception, if any, is its ``__cause__``.

    Args:
        message: what failed, naming the destination and the cause.
        destination: the queue, subject or exchange published to, or ``None``.

    Attributes:
        destination: as given.
    """

    def __init__(self, message: str, *, destination: str | None = None) -> None:
        super().__init__(message)
        self.destination = destination


class InvalidMessage(PublishError, ValueError):
    """A message that cannot be published as given, however often it is sent: its payload
    cannot be encoded in its content type, it is over a size limit (``broker.max_message_bytes``
    or the server's), a header is not a string or one the broker cannot carry, the
    destination name is invalid, or ``routing_key`` was given for a queue.

    A :class:`PublishError` and a ``ValueError``: the caller's error, so policies never count
    it as a dependency failure (:func:`cordio.policy.failures.is_dependency_failure`) and
    never retry it.
    """


class PoisonMessage(Exception):
    """A message that can never be handled: undecodable, too large or invalid."""


class RemoteError(Exception):
    """The handler of a request failed; its error reply.

    Attributes:
        status: HTTP-style status (500 for unexpected failures).
        title: short summary.
        detail: explanation, or ``None``.
    """

    def __init__(self, status: int, title: str, detail: str | None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))


class RequestTimeout(TimeoutError):
    """No reply to a request within its timeout (a ``TimeoutError``).

    Attributes:
        destination: where the request went.
        timeout: the seconds waited.
    """

    def __init__(self, destination: str, timeout: float) -> None:
        super().__init__(f"no reply from {destination!r} within {timeout} s")
        self.destination = destination
        self.timeout = timeout


class DeadLetterError(Exception):
    """The dead-letter queue cannot be read: it does not exist, the broker is ``memory://``,
    or a message id given is not in it (the message names which)."""
