"""The recorder the error pipeline hands counts, spans and reports to."""

from __future__ import annotations

from typing import Any

from cordio import App
from cordio.observe.recorder import SinkRecorder, current_recorder, use_recorder
from cordio.policy import OnError, respond
from cordio.testing import TestApp


class Calls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, exc: BaseException, where: str, **options: Any) -> None:
        self.calls.append((type(exc).__name__, where, options))


class Gone(Exception):
    pass


async def test_a_handled_exception_reaches_the_current_recorder() -> None:
    app = App("svc")

    @app.http.get("/thing")
    @OnError({Gone: respond(410)})
    async def thing() -> None:
        raise Gone("sold out")

    recorder = Calls()
    use_recorder(recorder)
    try:
        async with TestApp(app) as client:
            assert (await client.get("/thing")).status_code == 410
    finally:
        use_recorder(SinkRecorder())
    assert recorder.calls == [
        ("Gone", "thing", {"status": 410, "count": True, "span": True, "report": False})
    ]


def test_the_default_recorder_is_the_sinks() -> None:
    assert isinstance(current_recorder(), SinkRecorder)
