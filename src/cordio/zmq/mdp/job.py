"""What a worker's handler is given (:class:`Job`) and what it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cordio.zmq.mdp.errors import MDPError
from cordio.zmq.mdp.frames import Version


@dataclass(frozen=True)
class Job:
    """One request, as a handler gets it.

    Attributes:
        service: the service name.
        client: the client's address as the broker gave it (opaque).
        body: the request body: one or more frames.
        version: the protocol version of this connection.
    """

    service: str
    client: bytes
    body: tuple[bytes, ...]
    version: Version
    _partial: Callable[[tuple[bytes, ...]], Awaitable[None]] = field(repr=False, compare=False)

    async def partial(self, *frames: bytes) -> None:
        """Send part of the reply now, as an MDP/0.2 PARTIAL (RFC 18: "zero or more PARTIAL
        commands ... followed by exactly one FINAL"); the handler's return value is the
        FINAL.

        Raises:
            MDPError: the connection speaks MDP/0.1, whose REQUEST has exactly one REPLY.
            ValueError: no frames.
        """
        if self.version is Version.V01:
            raise MDPError(self.service, "MDP/0.1 has one REPLY per request (RFC 7): no PARTIAL")
        if not frames:
            raise ValueError("a PARTIAL needs at least one frame")
        await self._partial(frames)


#: What a handler returns: the reply body, one frame or several.
ReplyBody = bytes | Sequence[bytes]
#: A worker's handler: a coroutine function taking the :class:`Job`.
Handler = Callable[[Job], Awaitable[ReplyBody]]
