"""The wire format of the Majordomo Protocol, MDP/0.1 (ZeroMQ RFC 7) and MDP/0.2 (RFC 18).

Every command is a multipart message (a list of ``bytes`` frames) whose protocol header
says which sub-protocol and version it is; the version of each message is read from its
own header, so one broker speaks both versions at once:

=========  ==================================  ===================================
header     MDP/0.1 (RFC 7)                     MDP/0.2 (RFC 18)
=========  ==================================  ===================================
client     ``""``, ``"MDPC01"``, service, body  ``"MDPC02"``, command, service, body
worker     ``""``, ``"MDPW01"``, command, ...   ``"MDPW02"``, command, ...
=========  ==================================  ===================================

MDP/0.1 commands start with an empty frame (what a REQ socket adds and strips); MDP/0.2
commands do not (RFC 18, "Goals": "removal of empty frames at start of commands"). Worker
command bytes (RFC 7 / RFC 18, "MDP/Worker"):

==============  =======  =======
command         0.1      0.2
==============  =======  =======
READY           ``01``   ``01``
REQUEST         ``02``   ``02``
REPLY           ``03``   —
PARTIAL         —        ``03``
FINAL           —        ``04``
HEARTBEAT       ``04``   ``05``
DISCONNECT      ``05``   ``06``
==============  =======  =======

MDP/0.2 client commands: REQUEST ``01``, PARTIAL ``02``, FINAL ``03`` (RFC 18,
"MDP/Client"); MDP/0.1 has no client command frame: a REQUEST and a REPLY look the same,
and the direction tells them apart.

Each command is a small frozen value object: :class:`ClientRequest`, :class:`ClientReply`
(MDP/Client) and :class:`Ready`, :class:`Request`, :class:`Reply`, :class:`Heartbeat`,
:class:`Disconnect` (MDP/Worker). ``to_frames()`` builds the wire frames; the ``parse_*``
functions read them and raise :class:`~cordio.zmq.mdp.errors.MalformedMessage` naming what is
wrong. Frames here never include the identity frame a ROUTER socket adds (RFC 7, "ROUTER
Addressing"): the broker strips it before parsing and puts it first when sending.

Parsing is strict, as the RFCs lay the commands out: a command with fewer or more frames than
its layout, an unknown header or command, a non-empty delimiter frame, an empty service name
or client address is malformed. Body frames are opaque and never copied or inspected.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from cordio.zmq.mdp.errors import MalformedMessage


class Version(enum.Enum):
    """A protocol version; its value is what people call it."""

    V01 = "MDP/0.1"  # RFC 7
    V02 = "MDP/0.2"  # RFC 18


#: Protocol headers (RFC 7 and RFC 18: frame "MDPC0x" / "MDPW0x").
CLIENT_HEADER = {Version.V01: b"MDPC01", Version.V02: b"MDPC02"}
WORKER_HEADER = {Version.V01: b"MDPW01", Version.V02: b"MDPW02"}

#: MMI (RFC 8): services under this prefix are answered by the broker itself.
MMI_PREFIX = b"mmi."

READY = "READY"
REQUEST = "REQUEST"
REPLY = "REPLY"
PARTIAL = "PARTIAL"
FINAL = "FINAL"
HEARTBEAT = "HEARTBEAT"
DISCONNECT = "DISCONNECT"

#: Worker command bytes by version (RFC 7 and RFC 18, "MDP/Worker").
WORKER_COMMANDS: dict[Version, dict[str, bytes]] = {
    Version.V01: {
        READY: b"\x01",
        REQUEST: b"\x02",
        REPLY: b"\x03",
        HEARTBEAT: b"\x04",
        DISCONNECT: b"\x05",
    },
    Version.V02: {
        READY: b"\x01",
        REQUEST: b"\x02",
        PARTIAL: b"\x03",
        FINAL: b"\x04",
        HEARTBEAT: b"\x05",
        DISCONNECT: b"\x06",
    },
}

#: MDP/0.2 client command bytes (RFC 18, "MDP/Client").
CLIENT_COMMANDS_02 = {REQUEST: b"\x01", PARTIAL: b"\x02", FINAL: b"\x03"}

_WORKER_NAMES = {
    version: {code: name for name, code in codes.items()}
    for version, codes in WORKER_COMMANDS.items()
}
_W01_NAMES, _W02_NAMES = _WORKER_NAMES[Version.V01], _WORKER_NAMES[Version.V02]
_CLIENT_NAMES_02 = {code: name for name, code in CLIENT_COMMANDS_02.items()}
_RFC = {Version.V01: "RFC 7", Version.V02: "RFC 18"}

# the same, looked up without hashing a Version (an enum's hash runs Python code)
_C01, _C02 = CLIENT_HEADER[Version.V01], CLIENT_HEADER[Version.V02]
_W01, _W02 = WORKER_HEADER[Version.V01], WORKER_HEADER[Version.V02]
_W01_CODES, _W02_CODES = WORKER_COMMANDS[Version.V01], WORKER_COMMANDS[Version.V02]
_C02_REQUEST = CLIENT_COMMANDS_02[REQUEST]
_C02_PARTIAL, _C02_FINAL = CLIENT_COMMANDS_02[PARTIAL], CLIENT_COMMANDS_02[FINAL]
_REQUESTS = frozenset({REQUEST})
_REPLIES = frozenset({REPLY, PARTIAL, FINAL})

_CLIENT = "client"
_WORKER = "worker"
_HEADERS = {
    header: (side, version)
    for side, table in ((_CLIENT, CLIENT_HEADER), (_WORKER, WORKER_HEADER))
    for version, header in table.items()
}


# -- value objects ------------------------------------------------------------------------


def _check_name(value: bytes, what: str) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")


def _check_body(body: tuple[bytes, ...]) -> None:
    if not isinstance(body, tuple):
        raise TypeError(f"a body is a tuple of frames, got {type(body).__name__}")
    if not body:
        raise ValueError("a body needs at least one frame (RFC 7 / RFC 18: '4 or more frames')")


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """REQUEST, client to broker (RFC 7 / RFC 18, "MDP/Client").

    Attributes:
        version: the protocol version.
        service: the service name (non-empty).
        body: the request body, one or more opaque frames.
    """

    version: Version
    service: bytes
    body: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_name(self.service, "a service name")
        _check_body(self.body)

    def to_frames(self) -> list[bytes]:
        """The wire frames: ``"", MDPC01, service, body...`` or ``MDPC02, 01, service,
        body...``."""
        if self.version is Version.V01:
            return [b"", _C01, self.service, *self.body]
        return [_C02, _C02_REQUEST, self.service, *self.body]


@dataclass(frozen=True, slots=True)
class ClientReply:
    """A reply, broker to client: MDP/0.1 REPLY, MDP/0.2 PARTIAL or FINAL.

    Attributes:
        version: the protocol version.
        service: the service the request was for (non-empty).
        body: the reply body, one or more opaque frames.
        final: ``False`` for an MDP/0.2 PARTIAL (RFC 18: zero or more PARTIALs, then one
            FINAL); always ``True`` in MDP/0.1, which has a single REPLY.

    Raises:
        ValueError: an MDP/0.1 reply that is not final.
    """

    version: Version
    service: bytes
    body: tuple[bytes, ...]
    final: bool = True

    def __post_init__(self) -> None:
        _check_name(self.service, "a service name")
        _check_body(self.body)
        if self.version is Version.V01 and not self.final:
            raise ValueError("MDP/0.1 has no PARTIAL replies (RFC 7)")

    def to_frames(self) -> list[bytes]:
        """The wire frames: ``"", MDPC01, service, body...`` or ``MDPC02, 02|03, service,
        body...``."""
        if self.version is Version.V01:
            return [b"", _C01, self.service, *self.body]
        return [_C02, _C02_FINAL if self.final else _C02_PARTIAL, self.service, *self.body]


def _worker_frames(version: Version, command: str, *rest: bytes) -> list[bytes]:
    if version is Version.V01:
        return [b"", _W01, _W01_CODES[command], *rest]
    return [_W02, _W02_CODES[command], *rest]


@dataclass(frozen=True, slots=True)
class Ready:
    """READY, worker to broker: register for one service (RFC 7 / RFC 18, "Opening and
    Closing a Connection"; one READY per connection).

    Attributes:
        version: the protocol version.
        service: the service name (non-empty).
    """

    version: Version
    service: bytes

    def __post_init__(self) -> None:
        _check_name(self.service, "a service name")

    def to_frames(self) -> list[bytes]:
        """The wire frames (4 in MDP/0.1, 3 in MDP/0.2)."""
        return _worker_frames(self.version, READY, self.service)


@dataclass(frozen=True, slots=True)
class Request:
    """REQUEST, broker to worker (RFC 7 / RFC 18, "Request and Reply Processing").

    Attributes:
        version: the protocol version.
        client: the client's address (exactly one non-empty frame; the worker returns it in
            its reply).
        body: the request body, one or more opaque frames.
    """

    version: Version
    client: bytes
    body: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_name(self.client, "a client address")
        _check_body(self.body)

    def to_frames(self) -> list[bytes]:
        """The wire frames: header, command, client address, empty delimiter, body."""
        return _worker_frames(self.version, REQUEST, self.client, b"", *self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """A worker's reply to its request: MDP/0.1 REPLY, MDP/0.2 PARTIAL or FINAL.

    Attributes:
        version: the protocol version.
        client: the client address the request carried.
        body: the reply body, one or more opaque frames.
        final: ``False`` for an MDP/0.2 PARTIAL; always ``True`` in MDP/0.1.

    Raises:
        ValueError: an MDP/0.1 reply that is not final.
    """

    version: Version
    client: bytes
    body: tuple[bytes, ...]
    final: bool = True

    def __post_init__(self) -> None:
        _check_name(self.client, "a client address")
        _check_body(self.body)
        if self.version is Version.V01 and not self.final:
            raise ValueError("MDP/0.1 has no PARTIAL replies (RFC 7)")

    @property
    def command(self) -> str:
        """``"REPLY"``, ``"PARTIAL"`` or ``"FINAL"``."""
        if self.version is Version.V01:
            return REPLY
        return FINAL if self.final else PARTIAL

    def to_frames(self) -> list[bytes]:
        """The wire frames: header, command, client address, empty delimiter, body."""
        return _worker_frames(self.version, self.command, self.client, b"", *self.body)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """HEARTBEAT, either way (RFC 7 / RFC 18, "Heartbeating").

    Attributes:
        version: the protocol version.
    """

    version: Version

    def to_frames(self) -> list[bytes]:
        """The wire frames (3 in MDP/0.1, 2 in MDP/0.2)."""
        return _worker_frames(self.version, HEARTBEAT)


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT, either way: the sender sends nothing more on this connection (RFC 7 /
    RFC 18, "Opening and Closing a Connection").

    Attributes:
        version: the protocol version.
    """

    version: Version

    def to_frames(self) -> list[bytes]:
        """The wire frames (3 in MDP/0.1, 2 in MDP/0.2)."""
        return _worker_frames(self.version, DISCONNECT)


#: Any MDP/Worker command.
WorkerCommand = Ready | Request | Reply | Heartbeat | Disconnect


# -- parsing ------------------------------------------------------------------------------


def _show(frame: bytes, limit: int = 16) -> str:
    """A short printable form of a frame for error messages (never the whole of a big one)."""
    if len(frame) <= limit:
        return repr(frame)
    return f"{frame[:limit]!r}... ({len(frame)} bytes)"


def _split(frames: Sequence[bytes]) -> tuple[str, Version, Sequence[bytes]]:
    """``(side, version, frames after the header)``, from the header's position and value."""
    if not frames:
        raise MalformedMessage("too_few_frames", "an empty message has no protocol header")
    first = frames[0]
    if first == b"":
        if len(frames) < 2:
            raise MalformedMessage("too_few_frames", "an empty frame and no protocol header")
        header = frames[1]
        found = _HEADERS.get(header)
        if found is not None and found[1] is Version.V01:
            return found[0], Version.V01, frames[2:]
        if found is not None:
            raise MalformedMessage(
                "unknown_header",
                f"{header.decode()} commands start with their header, not an empty frame (RFC 18)",
            )
        raise MalformedMessage("unknown_header", f"protocol header {_show(header)} is not MDP")
    found = _HEADERS.get(first)
    if found is not None and found[1] is Version.V02:
        return found[0], Version.V02, frames[1:]
    if found is not None:
        raise MalformedMessage(
            "unknown_header",
            f"{first.decode()} commands start with an empty frame, then the header (RFC 7)",
        )
    second = _HEADERS.get(frames[1]) if len(frames) > 1 else None
    if second is not None and second[1] is Version.V01:
        raise MalformedMessage(
            "nonempty_delimiter",
            f"frame 0 before {frames[1].decode()} must be empty (RFC 7), got {_show(first)}",
        )
    raise MalformedMessage("unknown_header", f"protocol header {_show(first)} is not MDP")


def _count(
    frames: Sequence[bytes], rest: Sequence[bytes], need: int, exact: bool, what: str
) -> None:
    """Check that ``rest`` (the frames after the header and command) has ``need`` frames,
    or at least that many."""
    if len(rest) < need:
        total = len(frames) - len(rest) + need
        layout = f"{total} frames" if exact else f"{total} or more frames"
        raise MalformedMessage("too_few_frames", f"{what} has {layout}, got {len(frames)}")
    if exact and len(rest) > need:
        total = len(frames) - len(rest) + need
        raise MalformedMessage("too_many_frames", f"{what} has {total} frames, got {len(frames)}")


def _client_command(
    version: Version, rest: Sequence[bytes], expect: frozenset[str]
) -> tuple[str, int]:
    """The client command (``REQUEST``/``PARTIAL``/``FINAL``) and the index of the service
    frame in ``rest``."""
    if version is Version.V01:
        return (REQUEST if REQUEST in expect else REPLY), 0
    if not rest:
        raise MalformedMessage("too_few_frames", "MDPC02 without a command frame (RFC 18)")
    name = _CLIENT_NAMES_02.get(rest[0])
    if name is None:
        raise MalformedMessage("unknown_command", f"{_show(rest[0])} is no MDPC02 command")
    if name not in expect:
        raise MalformedMessage(
            "unexpected_command", f"MDPC02 {name} does not go this way (RFC 18, MDP/Client)"
        )
    return name, 1


def _what(header: bytes, name: str, version: Version) -> str:
    """How error messages call a command: ``MDPC01 REQUEST (RFC 7)``."""
    return f"{header.decode()} {name} ({_RFC[version]})"


def _client_parts(
    frames: Sequence[bytes], version: Version, rest: Sequence[bytes], expect: frozenset[str]
) -> tuple[str, bytes, tuple[bytes, ...]]:
    name, at = _client_command(version, rest, expect)
    if len(rest) < at + 2:
        _count(frames, rest, at + 2, False, _what(CLIENT_HEADER[version], name, version))
    service = rest[at]
    if not service:
        what = _what(CLIENT_HEADER[version], name, version)
        raise MalformedMessage("empty_service", f"{what}: the service name frame is empty")
    return name, service, tuple(rest[at + 1 :])


def parse_request(frames: Sequence[bytes]) -> ClientRequest:
    """Read a client's REQUEST as the broker receives it (without the ROUTER identity).

    Raises:
        MalformedMessage: not an MDP client REQUEST (a worker command included).
    """
    side, version, rest = _split(frames)
    if side != _CLIENT:
        raise MalformedMessage("unexpected_command", "a worker command where a request was due")
    _, service, body = _client_parts(frames, version, rest, _REQUESTS)
    return ClientRequest(version, service, body)


def parse_reply(frames: Sequence[bytes]) -> ClientReply:
    """Read a reply as a client's DEALER socket receives it (MDP/0.1 keeps its empty first
    frame on a DEALER).

    Raises:
        MalformedMessage: not an MDP client REPLY, PARTIAL or FINAL.
    """
    side, version, rest = _split(frames)
    if side != _CLIENT:
        raise MalformedMessage("unexpected_command", "a worker command where a reply was due")
    name, service, body = _client_parts(frames, version, rest, _REPLIES)
    return ClientReply(version, service, body, final=name != PARTIAL)


def parse_worker(frames: Sequence[bytes]) -> WorkerCommand:
    """Read an MDP/Worker command, either way: as the broker receives it (without the ROUTER
    identity) or as a worker's DEALER socket does (MDP/0.1 with its empty first frame).

    Which commands are expected is the receiver's business (RFC 7: the broker answers a
    valid but unexpected command with DISCONNECT).

    Raises:
        MalformedMessage: not an MDP worker command.
    """
    side, version, rest = _split(frames)
    if side != _WORKER:
        raise MalformedMessage("unexpected_command", "a client command where a worker's was due")
    return _worker_command(frames, version, rest)


def parse(frames: Sequence[bytes]) -> ClientRequest | WorkerCommand:
    """Read what a broker receives on its ROUTER socket (the identity frame removed): a
    client REQUEST or a worker command, told apart by the protocol header.

    Raises:
        MalformedMessage: not an MDP command a broker can receive well-formed.
    """
    side, version, rest = _split(frames)
    if side == _CLIENT:
        _, service, body = _client_parts(frames, version, rest, _REQUESTS)
        return ClientRequest(version, service, body)
    return _worker_command(frames, version, rest)


def _worker_command(
    frames: Sequence[bytes], version: Version, rest: Sequence[bytes]
) -> WorkerCommand:
    if not rest:
        header = WORKER_HEADER[version].decode()
        raise MalformedMessage("too_few_frames", f"{header} without a command frame")
    name = (_W01_NAMES if version is Version.V01 else _W02_NAMES).get(rest[0])
    if name is None:
        header = WORKER_HEADER[version].decode()
        raise MalformedMessage("unknown_command", f"{_show(rest[0])} is no {header} command")
    args = rest[1:]
    if name == READY:
        if len(args) != 1:
            _count(frames, args, 1, True, _what(WORKER_HEADER[version], name, version))
        if not args[0]:
            what = _what(WORKER_HEADER[version], name, version)
            raise MalformedMessage("empty_service", f"{what}: the service name frame is empty")
        return Ready(version, args[0])
    if name in (HEARTBEAT, DISCONNECT):
        if args:
            _count(frames, args, 0, True, _what(WORKER_HEADER[version], name, version))
        return Heartbeat(version) if name == HEARTBEAT else Disconnect(version)
    if len(args) < 3:
        _count(frames, args, 3, False, _what(WORKER_HEADER[version], name, version))
    client, delimiter = args[0], args[1]
    if not client:
        what = _what(WORKER_HEADER[version], name, version)
        raise MalformedMessage("empty_address", f"{what}: the client address frame is empty")
    if delimiter:
        what = _what(WORKER_HEADER[version], name, version)
        raise MalformedMessage(
            "nonempty_delimiter",
            f"{what}: the frame after the client address must be empty, got {_show(delimiter)}",
        )
    body = tuple(args[2:])
    if name == REQUEST:
        return Request(version, client, body)
    return Reply(version, client, body, final=name != PARTIAL)
