"""The MDP wire format: each command's frames exactly as RFC 7 (MDP/0.1) and RFC 18 (MDP/0.2)
lay them out, parsed back to the same value, and every malformed shape named by its reason."""

from __future__ import annotations

import pytest

from cordio.zmq.mdp.errors import (
    ERROR_MARKER,
    MALFORMED_REASONS,
    MalformedMessage,
    error_body,
    read_error,
)
from cordio.zmq.mdp.frames import (
    ClientReply,
    ClientRequest,
    Disconnect,
    Heartbeat,
    Ready,
    Reply,
    Request,
    Version,
    parse,
    parse_reply,
    parse_request,
    parse_worker,
)

V01, V02 = Version.V01, Version.V02

# (value, the frames the RFC lays out for it, written out by hand from the RFC text)
LAYOUTS = [
    (ClientRequest(V01, b"echo", (b"a", b"b")), [b"", b"MDPC01", b"echo", b"a", b"b"]),
    (ClientRequest(V02, b"echo", (b"a",)), [b"MDPC02", b"\x01", b"echo", b"a"]),
    (Ready(V01, b"echo"), [b"", b"MDPW01", b"\x01", b"echo"]),
    (Ready(V02, b"echo"), [b"MDPW02", b"\x01", b"echo"]),
    (Request(V01, b"C1", (b"x",)), [b"", b"MDPW01", b"\x02", b"C1", b"", b"x"]),
    (Request(V02, b"C1", (b"x", b"y")), [b"MDPW02", b"\x02", b"C1", b"", b"x", b"y"]),
    (Reply(V01, b"C1", (b"r",)), [b"", b"MDPW01", b"\x03", b"C1", b"", b"r"]),
    (Reply(V02, b"C1", (b"p",), final=False), [b"MDPW02", b"\x03", b"C1", b"", b"p"]),
    (Reply(V02, b"C1", (b"f",)), [b"MDPW02", b"\x04", b"C1", b"", b"f"]),
    (Heartbeat(V01), [b"", b"MDPW01", b"\x04"]),
    (Heartbeat(V02), [b"MDPW02", b"\x05"]),
    (Disconnect(V01), [b"", b"MDPW01", b"\x05"]),
    (Disconnect(V02), [b"MDPW02", b"\x06"]),
]

REPLIES = [
    (ClientReply(V01, b"echo", (b"r",)), [b"", b"MDPC01", b"echo", b"r"]),
    (ClientReply(V02, b"echo", (b"p",), final=False), [b"MDPC02", b"\x02", b"echo", b"p"]),
    (ClientReply(V02, b"echo", (b"f", b"g")), [b"MDPC02", b"\x03", b"echo", b"f", b"g"]),
]


@pytest.mark.parametrize(("value", "frames"), LAYOUTS)
def test_layouts_match_the_rfcs_and_parse_back(value: object, frames: list[bytes]) -> None:
    assert value.to_frames() == frames  # type: ignore[attr-defined]
    assert parse(frames) == value


@pytest.mark.parametrize(("value", "frames"), LAYOUTS[2:])
def test_worker_commands_parse_on_the_worker_side_too(value: object, frames: list[bytes]) -> None:
    assert parse_worker(frames) == value


@pytest.mark.parametrize(("value", "frames"), REPLIES)
def test_client_replies(value: ClientReply, frames: list[bytes]) -> None:
    assert value.to_frames() == frames
    assert parse_reply(frames) == value


def test_an_mdp01_request_and_reply_look_alike_and_the_direction_tells() -> None:
    frames = [b"", b"MDPC01", b"echo", b"x"]
    assert parse_request(frames) == ClientRequest(V01, b"echo", (b"x",))
    assert parse_reply(frames) == ClientReply(V01, b"echo", (b"x",))


def test_reply_names_its_command() -> None:
    assert Reply(V01, b"c", (b"",)).command == "REPLY"
    assert Reply(V02, b"c", (b"",), final=False).command == "PARTIAL"
    assert Reply(V02, b"c", (b"",)).command == "FINAL"


BIG = b"z" * 1000

# (frames, reason) as the broker receives them (identity stripped)
MALFORMED = [
    ([], "too_few_frames"),
    ([b""], "too_few_frames"),
    ([b"", b"MDPC01"], "too_few_frames"),
    ([b"", b"MDPC01", b"echo"], "too_few_frames"),  # no body frame: "4 or more frames"
    ([b"MDPC02", b"\x01", b"echo"], "too_few_frames"),
    ([b"MDPC02"], "too_few_frames"),
    ([b"", b"MDPW01"], "too_few_frames"),
    ([b"", b"MDPW01", b"\x01"], "too_few_frames"),  # READY without a service
    ([b"", b"MDPW01", b"\x03", b"C1", b""], "too_few_frames"),  # REPLY without a body
    ([b"MDPW02", b"\x04", b"C1"], "too_few_frames"),
    ([b"", b"MDPW01", b"\x04", b"extra"], "too_many_frames"),
    ([b"MDPW02", b"\x01", b"echo", b"extra"], "too_many_frames"),
    ([b"MDPW02", b"\x06", b""], "too_many_frames"),
    ([b"HELLO", b"world"], "unknown_header"),
    ([b"", b"MDPX01", b"echo", b"x"], "unknown_header"),
    ([b"", b"MDPC02", b"\x01", b"echo", b"x"], "unknown_header"),  # 0.2 has no empty frame
    ([b"MDPC01", b"echo", b"x"], "unknown_header"),  # 0.1 needs its empty frame 0
    ([BIG], "unknown_header"),
    ([b"", b"MDPW01", b"\x06"], "unknown_command"),  # 0.1 has no 06
    ([b"MDPW02", b"\x07"], "unknown_command"),
    ([b"", b"MDPW01", b"\x01\x00", b"echo"], "unknown_command"),
    ([b"", b"MDPW01", b""], "unknown_command"),
    ([b"MDPC02", b"\x09", b"echo", b"x"], "unknown_command"),
    ([b"MDPC02", b"\x03", b"echo", b"x"], "unexpected_command"),  # FINAL from a client
    ([b"x", b"MDPC01", b"echo", b"body"], "nonempty_delimiter"),
    ([b"", b"MDPW01", b"\x03", b"C1", b"not empty", b"r"], "nonempty_delimiter"),
    ([b"MDPW02", b"\x04", b"C1", b"x", b"r"], "nonempty_delimiter"),
    ([b"", b"MDPC01", b"", b"x"], "empty_service"),
    ([b"MDPW02", b"\x01", b""], "empty_service"),
    ([b"", b"MDPW01", b"\x03", b"", b"", b"r"], "empty_address"),
]


@pytest.mark.parametrize(("frames", "reason"), MALFORMED)
def test_malformed_messages_name_the_reason(frames: list[bytes], reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(frames)
    assert caught.value.reason == reason
    assert reason in MALFORMED_REASONS
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 300  # a huge frame is never quoted whole


def test_direction_specific_parsers_refuse_the_other_side() -> None:
    with pytest.raises(MalformedMessage, match="unexpected_command"):
        parse_request(Ready(V01, b"echo").to_frames())
    with pytest.raises(MalformedMessage, match="unexpected_command"):
        parse_reply(Heartbeat(V02).to_frames())
    with pytest.raises(MalformedMessage, match="unexpected_command"):
        parse_reply(ClientRequest(V02, b"echo", (b"x",)).to_frames())
    with pytest.raises(MalformedMessage, match="unexpected_command"):
        parse_worker(ClientRequest(V01, b"echo", (b"x",)).to_frames())


def test_values_refuse_what_could_not_go_on_the_wire() -> None:
    with pytest.raises(ValueError, match="PARTIAL"):
        Reply(V01, b"c", (b"x",), final=False)
    with pytest.raises(ValueError, match="PARTIAL"):
        ClientReply(V01, b"s", (b"x",), final=False)
    with pytest.raises(ValueError, match="at least one frame"):
        ClientRequest(V01, b"s", ())
    with pytest.raises(ValueError, match="empty"):
        Ready(V02, b"")
    with pytest.raises(TypeError):
        Ready(V02, "echo")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Request(V02, b"c", [b"x"])  # type: ignore[arg-type]


def test_values_are_frozen() -> None:
    ready = Ready(V01, b"echo")
    with pytest.raises(AttributeError):
        ready.service = b"other"  # type: ignore[misc]


def test_error_replies() -> None:
    body = error_body(504, "no worker took it — in time")
    assert body[0] == ERROR_MARKER
    assert read_error(body) == (504, "no worker took it — in time")
    assert read_error([b"504", b"x"]) is None
    assert read_error([ERROR_MARKER, b"5x4", b"x"]) is None
    assert read_error([ERROR_MARKER, b"504"]) is None
