"""NATS JetStream topology: the streams of ``broker.streams`` created or updated at connect,
which stream stores a subject (learnt from settings, asked from the server with a subject
filter, forgotten when a publish finds it gone or moved), and a stream of its own
(``CORDIO_<subject>``) created for a subject no stream stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cordio.errors import require_extra
from cordio.messaging.errors import PublishError
from cordio.messaging.nats.wire import stream_name, subject_matches

if TYPE_CHECKING:
    from cordio.messaging.settings import BrokerSettings, StreamSettings


class NatsTopology:
    """The streams of :class:`~cordio.messaging.nats.NatsBroker`, a base class of it: they
    go through the broker's JetStream context, and which stream stores which subjects is
    kept in its ``_literal`` (subjects) and ``_patterns`` (wildcard patterns)."""

    settings: BrokerSettings
    _js: Any
    _literal: dict[str, str]
    _patterns: dict[str, str]

    def _stream_config(self, name: str, options: StreamSettings) -> Any:
        api: Any = require_extra("nats.js.api", feature="NATS", extra="nats")
        return api.StreamConfig(
            name=name,
            subjects=options.subjects,
            storage=api.StorageType(options.storage),
            num_replicas=options.replicas,
            max_age=options.max_age,
            max_msgs=options.max_msgs,
            max_bytes=options.max_bytes,
            duplicate_window=options.duplicate_window,
            retention=api.RetentionPolicy(options.retention),
        )

    async def _declare_streams(self) -> None:
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        for name, options in self.settings.streams.items():
            config = self._stream_config(name, options)
            try:
                try:
                    await self._js.stream_info(name)
                except js_errors.NotFoundError:
                    await self._js.add_stream(config)
                else:
                    await self._js.update_stream(config)
            except js_errors.APIError as exc:
                raise ValueError(
                    f"broker.streams.{name}: the NATS server refused the stream: {exc}"
                ) from None
            self._learn(name, options.subjects)

    def _learn(self, stream: str, subjects: list[str]) -> None:
        for pattern in subjects:
            wild = "*" in pattern.split(".") or pattern.endswith(">")
            (self._patterns if wild else self._literal)[pattern] = stream

    def _forget(self, stream: str) -> None:
        """Ask the server again next time (the stream may be gone or changed)."""
        for table in (self._literal, self._patterns):
            for pattern in [p for p, name in table.items() if name == stream]:
                del table[pattern]

    def _known(self, subject: str) -> str | None:
        stream = self._literal.get(subject)
        if stream is None:
            for pattern, name in self._patterns.items():
                if subject_matches(pattern, subject):
                    return name
        return stream

    async def _stored_by(self, subject: str) -> str | None:
        """The stream that stores ``subject`` (a source may be a wildcard: the stream
        whose subjects overlap it), known or asked from the server; ``None`` if none."""
        known = self._known(subject)
        if known is not None:
            return known
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        try:
            name: str = await self._js.find_stream_name_by_subject(subject)
            info = await self._js.stream_info(name)
        except js_errors.NotFoundError:
            return None
        except js_errors.ServiceUnavailableError:
            raise  # JetStream (re)starting: send again
        except js_errors.APIError as exc:
            raise PublishError(
                f"asking the NATS server which stream stores {subject!r} failed:"
                f" {exc.description or repr(exc)}",
                destination=subject,
            ) from exc
        self._learn(name, list(info.config.subjects or ()))
        if self._known(subject) is None:  # a wildcard source the stream's subjects overlap
            self._literal[subject] = name
        return name

    async def _stream(self, subject: str) -> str:
        """The stream that stores ``subject``; one of its own is created if none does."""
        stream = await self._stored_by(subject)
        if stream is not None:
            return stream
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        name = "CORDIO_" + stream_name(subject)
        try:
            await self._js.add_stream(name=name, subjects=[subject])
        except js_errors.ServiceUnavailableError:
            raise
        except js_errors.APIError as exc:
            # another client created a stream for the subject meanwhile: use it
            stream = await self._stored_by(subject)
            if stream is None:
                raise PublishError(
                    f"no stream stores {subject!r}, and the NATS server refused to create"
                    f" stream {name!r} for it: {exc.description or repr(exc)}",
                    destination=subject,
                ) from exc
            return stream
        self._learn(name, [subject])
        return name
