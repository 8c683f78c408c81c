"""What a :class:`~cordio.zmq.relay.Relay` is told and tells: its options, the results it
yields and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cordio.zmq.mdp._options import counts, seconds
from cordio.zmq.relay_thread import Codec, ErrorPolicy


class RelayError(Exception):
    """The base of the relay's errors."""


class RelayClosed(RelayError):
    """The relay does not take the item: not started, stopping or stopped; or an item handed
    to it was lost when it stopped (the message says which)."""


class ProcessingError(RelayError):
    """The processing function raised on this item (in its thread).

    Args:
        type_name: the exception's class name, e.g. ``"ValueError"``.
        message: ``str()`` of the exception.

    Attributes:
        type_name: as given.
        message: as given.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message


@dataclass(frozen=True)
class RelayResult:
    """One result out of ``async for result in relay``.

    Attributes:
        id: the item's id frame (what :meth:`Relay.send` returned, or another producer's).
        value: the processing function's return value, decoded (``None`` on error).
        error: what the function raised, or ``None``.
    """

    id: bytes
    value: Any = None
    error: ProcessingError | None = None

    @property
    def ok(self) -> bool:
        """Whether the function returned (``error`` is ``None``)."""
        return self.error is None


@dataclass(frozen=True)
class RelayOptions:
    """How a relay runs; durations in seconds.

    Attributes:
        threads: worker threads, each with its own sockets (default 1).
        hwm: the high-water mark, in items, of the relay's sockets (default 100): see the
            module docstring for the bound it puts on items in flight.
        codec: ``"msgpack"`` (default; needs ``cordio[msgpack]``) or ``"raw"`` (bytes in,
            bytes out: the function must return ``bytes``).
        errors: ``"forward"`` (default): ``async for`` yields failed items with their error;
            ``"drop"``: it skips them (counted in :attr:`Relay.dropped`).
        grace: seconds :meth:`Relay.stop` waits for items in flight (default 5).
        join_timeout: seconds :meth:`Relay.stop` then waits for the threads to end, and
            :meth:`Relay.start` for them to open their sockets (default 5).

    Raises:
        ValueError: a value out of range, or an unknown codec or error policy.
    """

    threads: int = 1
    hwm: int = 100
    codec: Codec = "msgpack"
    errors: ErrorPolicy = "forward"
    grace: float = 5.0
    join_timeout: float = 5.0

    def __post_init__(self) -> None:
        counts(self, "threads", "hwm")
        seconds(self, "grace", zero=True)
        seconds(self, "join_timeout")
        if self.codec not in ("msgpack", "raw"):
            raise ValueError(f"codec must be 'msgpack' or 'raw', got {self.codec!r}")
        if self.errors not in ("forward", "drop"):
            raise ValueError(f"errors must be 'forward' or 'drop', got {self.errors!r}")
