"""NATS wire format: subject and header rules, and messages to and from nats-py.

Subjects follow the NATS protocol's rules (tokens separated by ``.``, no whitespace; ``*``
and ``>`` are wildcards, ``>`` only last); header names are HTTP field-name tokens (RFC 9110
§5.1) and values carry no CR/LF. cordio's message fields travel as headers: ``Nats-Msg-Id``
(the message id, JetStream's de-duplication key), ``Content-Type``, ``Reply-To``,
``Correlation-Id`` and the attempt header.
"""

from __future__ import annotations

import re
from typing import Any

from cordio.messaging.codec import JSON
from cordio.messaging.errors import InvalidMessage
from cordio.messaging.message import Message

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def stream_name(subject: str) -> str:
    """``subject`` as a stream or consumer name: every character other than ASCII letters,
    digits, ``_`` and ``-`` (``.``, ``*``, ``>``) becomes ``_``."""
    return _UNSAFE.sub("_", subject)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches a NATS subject ``pattern`` (``*`` one token, ``>`` one
    or more trailing tokens; NATS documentation, "Subject-Based Messaging", wildcards)."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def check_subject(subject: str, *, wildcards: bool) -> str | None:
    """Why ``subject`` is not a valid NATS subject, or ``None``: tokens separated by ``.``,
    none empty, no whitespace or control characters; ``*`` and ``>`` are wildcards, ``>``
    only last, and allowed only with ``wildcards`` (a consumer's source, not a publish)
    (NATS documentation, "Subject-Based Messaging", characters allowed)."""
    if not subject:
        return "a subject is needed"
    if _BAD_CHARACTERS.search(subject):
        return "subjects have no whitespace or control characters"
    if subject[0] == "." or subject[-1] == "." or ".." in subject:
        return "subject tokens (between dots) cannot be empty"
    if "*" in subject or ">" in subject:
        tokens = subject.split(".")
        for i, token in enumerate(tokens):
            if token in ("*", ">") and not wildcards:
                return "a publish goes to one subject: wildcards '*' and '>' are for consumers"
            if token == ">" and i != len(tokens) - 1:
                return "'>' can only be the last token"
    return None


_BAD_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")
#: header names NATS can carry (an RFC 9110 token; nats-py refuses others)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_headers(message: Message, destination: str) -> None:
    """Check that every header of ``message`` can travel over NATS.

    Raises:
        InvalidMessage: a header name that is not an RFC 9110 token, or a value with a CR
            or LF (which would end the header block), naming ``destination`` and the header.
    """
    for name, value in message.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidMessage(
                f"message for {destination!r}, header {name!r}: NATS header names are"
                " letters, digits and !#$%&'*+-.^_`|~ only",
                destination=destination,
            )
        if "\r" in value or "\n" in value:
            raise InvalidMessage(
                f"message for {destination!r}, header {name!r}: NATS header values cannot"
                " hold line breaks",
                destination=destination,
            )


def to_headers(message: Message) -> dict[str, str]:
    """The NATS headers carrying ``message``: its own headers, ``Nats-Msg-Id``,
    ``Content-Type``, and ``Reply-To`` / ``Correlation-Id`` when set."""
    headers = {
        **message.headers,
        "Nats-Msg-Id": message.message_id,
        "Content-Type": message.content_type,
    }
    if message.reply_to:
        headers["Reply-To"] = message.reply_to
    if message.correlation_id:
        headers["Correlation-Id"] = message.correlation_id
    return headers


def ack_fields(reply: str) -> tuple[str, str, str]:
    """``(stream, delivery count, stream sequence)`` from a JetStream ack subject, or empty
    strings. ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>``, or
    with ``<domain>.<account hash>`` after ``ACK`` (ADR-15); cheaper than nats-py's
    ``metadata``, which also builds a datetime."""
    tokens = reply.split(".")
    if len(tokens) == 9 and tokens[1] == "ACK":
        return tokens[2], tokens[4], tokens[5]
    if len(tokens) >= 11 and tokens[1] == "ACK":
        return tokens[4], tokens[6], tokens[7]
    return "", "", ""


# set by cordio (and nats-py's ``stream=``) for the transport, not for handlers
_TRANSPORT_HEADERS = frozenset({"Nats-Msg-Id", "Content-Type", "Nats-Expected-Stream"})


def header(raw: dict[str, str], name: str) -> str | None:
    """Header ``name`` in any letter case (NATS header names are case-sensitive; other
    clients write ``content-type``)."""
    lowered = name.lower()
    return next((value for key, value in raw.items() if key.lower() == lowered), None)


def from_nats(msg: Any) -> Message:
    """A JetStream delivery (a nats-py ``Msg``) as a :class:`Message`: the attempt from the
    ack subject's delivery count, the id from ``Nats-Msg-Id`` (else one stable over
    redeliveries), headers read in any letter case, transport headers left out."""
    raw = msg.headers
    stream, delivered, sequence = ack_fields(msg.reply or "")
    attempt = int(delivered) if delivered.isdigit() else 1
    if raw:
        get = raw.get
        # a message from a client that set no id gets one stable over redeliveries
        message_id = get("Nats-Msg-Id") or (f"{stream}:{sequence}" if stream else "")
        content_type = get("Content-Type")
        if content_type is not None:  # cordio's spelling, so the others are too
            reply_to, correlation_id = get("Reply-To"), get("Correlation-Id")
        else:
            content_type = header(raw, "Content-Type") or "application/json"
            reply_to = header(raw, "Reply-To")
            correlation_id = header(raw, "Correlation-Id")
        headers = {k: v for k, v in raw.items() if k not in _TRANSPORT_HEADERS}
    else:
        message_id = f"{stream}:{sequence}" if stream else ""
        content_type, reply_to, correlation_id, headers = "application/json", None, None, {}
    return Message(
        msg.data,
        headers,
        message_id,
        content_type,
        reply_to,
        correlation_id,
        attempt > 1,
        attempt,
    )


def reply_from_nats(msg: Any) -> Message:
    """A reply as :class:`Message`: its correlation id from the ``Correlation-Id`` header,
    else the last token of the reply subject (``<inbox>.<correlation id>``)."""
    raw = dict(msg.headers or {})
    correlation_id = raw.get("Correlation-Id") or header(raw, "Correlation-Id")
    return Message(
        body=msg.data,
        headers=raw,
        content_type=raw.get("Content-Type") or header(raw, "Content-Type") or JSON,
        correlation_id=correlation_id or msg.subject.rsplit(".", 1)[-1],
    )
