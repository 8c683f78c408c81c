"""Property tests: no known secret survives in any output, whatever it is embedded in."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from cordio.config.loader import Config
from cordio.observe.logging import LogSettings, configure_logging
from cordio.observe.masking import (
    MASK,
    Masker,
    current_masker,
    masked,
    masker_for,
    secret_values,
    use_masker,
)
from cordio.settings import Settings
from tests.observe.secret_strategies import (
    EMBEDDINGS,
    FAST,
    around,
    assert_hidden,
    embeddings,
    secrets,
)


@FAST
@given(secret=secrets, how=embeddings, before=around, after=around)
def test_a_known_secret_never_survives_in_text(
    secret: str, how: str, before: str, after: str
) -> None:
    masker = Masker(secrets=[secret])
    out = masker.text(before + EMBEDDINGS[how](secret) + after)
    assert_hidden(secret, out)


@FAST
@given(first=secrets, second=secrets, before=around, middle=around)
def test_two_secrets_side_by_side_or_overlapping(
    first: str, second: str, before: str, middle: str
) -> None:
    masker = Masker(secrets=[first, second])
    out = masker.text(before + first + middle + second + first[: len(first) // 2] + second)
    assert_hidden(first, out)
    assert_hidden(second, out)


def test_the_longest_secret_is_masked_whole() -> None:
    masker = Masker(secrets=["abcd", "abcdefgh"])
    assert masker.text("x abcdefgh y") == f"x {MASK} y"
    assert masker.text("abcdabcd") == MASK + MASK


def test_short_values_and_stars_are_not_looked_for() -> None:
    masker = Masker(secrets=["abc", "*****", "on"])
    assert masker.text("abc on ***** off") == "abc on ***** off"
    # ... but where a key or a URL names them, they are masked
    assert masker.text("password=abc amqp://u:on@h") == f"password={MASK} amqp://u:{MASK}@h"


def test_new_default_patterns() -> None:
    masker = Masker()
    for key in ("http.authorization", "client.cookie", "session_id", "auth.session.secret"):
        assert masker.is_secret_key(key), key
    assert masker.text("Cookie: sid=1234 Authorization: Basic dXNlcg==") == (
        f"Cookie: {MASK} Authorization: {MASK} dXNlcg=="
    )


class Db(Settings, section="db"):
    url: str = "sqlite://"
    password: SecretStr = SecretStr("")
    api_token: str = ""
    options: dict[str, str] = {}
    port: int = 5432


def test_the_secrets_of_a_configuration() -> None:
    config = Config(
        sections={
            "db": Db(
                url="postgresql://app:url-password@db/x",
                password=SecretStr("field-secret"),
                api_token="token-value",
                options={"session_key": "inner-secret", "mode": "fast"},
            ),
            "log": LogSettings(),
        }
    )
    found = set(secret_values(Masker(), config.sections["db"], "db"))
    assert found == {"url-password", "field-secret", "token-value", "inner-secret"}
    masker = masker_for(config)
    assert masker.text("field-secret fast token-value") == f"{MASK} fast {MASK}"
    assert masker.data({"a": ["x inner-secret y"], "cookie": "c", "flag": True}) == {
        "a": [f"x {MASK} y"],
        "cookie": MASK,
        "flag": True,
    }


def test_the_current_masker_is_the_runs() -> None:
    assert masked("password=x") == f"password={MASK}"
    use_masker(Masker(secrets=["run-secret"]))
    try:
        assert masked("it is run-secret") == f"it is {MASK}"
    finally:
        use_masker(None)
    assert current_masker().secrets == frozenset()


@pytest.fixture
def log_to() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def _raise(text: str) -> None:
    raise RuntimeError(f"cannot connect with {text}")


@FAST
@given(secret=secrets, how=embeddings, before=around, fmt=st.sampled_from(["json", "console"]))
def test_no_secret_survives_in_log_lines(
    log_to: io.StringIO, secret: str, how: str, before: str, fmt: str
) -> None:
    stream = io.StringIO()
    settings = LogSettings(format=fmt, rate_limit={"lines": 0})  # type: ignore[arg-type]
    configure_logging("svc", settings, stream=stream, masker=Masker(secrets=[secret]))
    log = logging.getLogger("svc.test")
    text = before + EMBEDDINGS[how](secret)
    log.warning("message %s", text)
    log.info("fields", extra={"fields": {"detail": text, "nested": {"k": [text]}}})
    try:
        try:
            _raise(text)
        except RuntimeError as exc:
            raise ValueError(repr(text)) from exc
    except ValueError:
        log.exception("failed")
        log.error("formatted:\n%s", traceback.format_exc())
    log.warning("with stack %s", text, stack_info=True)
    out = stream.getvalue()
    assert "cannot connect with" in out  # the traceback was written
    assert_hidden(secret, out)


async def test_a_hundred_concurrent_tasks_logging_secrets(log_to: io.StringIO) -> None:
    secrets_ = [f"s3cr#t-{i:03d}/{'x' * (i % 7)}" for i in range(100)]
    stream = io.StringIO()
    settings = LogSettings(format="json", rate_limit={"lines": 0})  # type: ignore[arg-type]
    configure_logging("svc", settings, stream=stream, masker=Masker(secrets=secrets_))
    log = logging.getLogger("svc.concurrent")

    async def work(i: int) -> None:
        for step in range(5):
            await asyncio.sleep(0)
            log.info("task %d step %d uses %s", i, step, secrets_[i])
            try:
                raise ConnectionError(f"amqp://app:{secrets_[i]}@mq/ refused")
            except ConnectionError:
                log.warning("task %d", i, exc_info=True)

    await asyncio.gather(*(work(i) for i in range(100)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1000
    records = [json.loads(line) for line in lines]
    assert sum("exc" in r for r in records) == 500
    for secret in secrets_:
        assert_hidden(secret, stream.getvalue())
