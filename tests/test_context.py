"""The event context and W3C traceparent parsing."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cordio.context import Context, current_context, trace_id_from_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_traceparent() -> None:
    assert trace_id_from_traceparent(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from_traceparent(VALID.upper()) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_invalid_traceparents() -> None:
    assert trace_id_from_traceparent(None) is None
    assert trace_id_from_traceparent("") is None
    assert trace_id_from_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert trace_id_from_traceparent("00-" + "g" * 32 + "-00f067aa0ba902b7-01") is None
    assert trace_id_from_traceparent("00-abc-00f067aa0ba902b7-01") is None
    assert trace_id_from_traceparent(VALID + "-" + "x" * 600) is None


@given(st.text(max_size=700))
def test_any_header_value_parses_or_is_rejected(value: str) -> None:
    found = trace_id_from_traceparent(value)
    assert found is None or (len(found) == 32 and int(found, 16) > 0)


def test_generated_trace_id_is_stable_per_context() -> None:
    ctx = Context("h", "http")
    assert re.fullmatch("[0-9a-f]{32}", ctx.trace_id), ctx.trace_id
    assert ctx.trace_id == ctx.trace_id  # generated once, then kept
    assert Context("h", "http").trace_id != ctx.trace_id
    assert current_context() is None
