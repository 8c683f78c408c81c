"""Named policies tuned from configuration: file, env, .env, command line; bad values."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cordio import App, ConfigError
from cordio.config import CliSource, ConfigSources, EnvSource, FileSource
from cordio.policy import CircuitBreaker, CircuitOpenError, Retry, Timeout
from cordio.testing import TestApp


def make_app(sources: list[object]) -> tuple[App, object]:
    app = App("svc", config=sources)  # type: ignore[arg-type]
    pricing = app.policy(
        "pricing",
        retry=Retry(attempts=2, initial_delay=0, max_delay=0),
        breaker=CircuitBreaker(consecutive_failures=10),
        timeout=Timeout(5),
    )
    calls: list[int] = []

    @pricing
    async def fetch() -> str:
        calls.append(1)
        raise ConnectionError("upstream down")

    @app.http.get("/price")
    async def price() -> str:
        try:
            return await fetch()
        except CircuitOpenError:
            return "open"
        except ConnectionError:
            return f"failed after {len(calls)}"

    return app, calls


async def test_defaults_from_code() -> None:
    app, _calls = make_app([])
    async with TestApp(app) as client:
        assert (await client.get("/price")).json() == "failed after 2"


async def test_overrides_from_file_env_and_cli(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "main.toml").write_text(
        "[policies.pricing.retry]\nattempts = 4\n[policies.pricing.breaker]\n"
        "consecutive_failures = 100\n"
    )
    sources = [
        FileSource(root=tmp_path),
        EnvSource("svc", environ={"SVC__POLICIES__PRICING__RETRY__ATTEMPTS": "5"}),
    ]
    app, _ = make_app(sources)
    async with TestApp(app) as client:
        assert (await client.get("/price")).json() == "failed after 5"
        assert app.config.explain("policies.pricing.retry.attempts") == (
            "env:SVC__POLICIES__PRICING__RETRY__ATTEMPTS"
        )
    cli = ConfigSources(sources).with_command_line(
        CliSource(
            [
                (
                    ("policies", "pricing", "breaker", "consecutive_failures"),
                    "1",
                    "--set policies.pricing.breaker.consecutive_failures",
                )
            ]
        )
    )
    app, _calls = make_app([])
    async with TestApp(app, config=cli) as client:
        assert (await client.get("/price")).json() == "failed after 5"
        assert (await client.get("/price")).json() == "open"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SVC__POLICIES__PRICING__RETRY__ATTEMPTS": "-1"},
            "policies.pricing.retry.attempts: Input should be greater than or equal to 1"
            " (env:SVC__POLICIES__PRICING__RETRY__ATTEMPTS)",
        ),
        (
            {"SVC__POLICIES__PRICING__RETRY__ON": '["NoSuchError"]'},
            "policies.pricing.retry.on: Value error, unknown exception type 'NoSuchError'",
        ),
        (
            {"SVC__POLICIES__PRICING__BULKHEAD__MAX_CONCURRENT": "2"},
            "policies.pricing.bulkhead: policy 'pricing' has no bulkhead",
        ),
        (
            {"SVC__POLICIES__PRICING__RETRY__TRIES": "2"},
            "policies.pricing.retry.tries: Extra inputs are not permitted",
        ),
        (
            {"SVC__POLICIES__BILLING__RETRY__ATTEMPTS": "2"},
            "policies.billing: no policy of this name; policies: ['pricing']",
        ),
    ],
)
async def test_invalid_policy_settings_stop_start_up(environ: dict[str, str], message: str) -> None:
    app, calls = make_app([EnvSource("svc", environ=environ)])
    with pytest.raises(ConfigError) as info:
        async with TestApp(app):
            pass
    assert message in str(info.value)
    assert calls == []


async def test_exception_names_from_configuration() -> None:
    app, _calls = make_app(
        [
            EnvSource(
                "svc", environ={"SVC__POLICIES__PRICING__RETRY__GIVE_UP_ON": '["ConnectionError"]'}
            )
        ]
    )
    async with TestApp(app) as client:
        assert (await client.get("/price")).json() == "failed after 1"


async def test_no_retry_outlives_the_shutdown_grace_period() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__SHUTDOWN__GRACE": "0.3"})])
    slow = app.policy(
        "slow", retry=Retry(attempts=1000, initial_delay=0.05, max_delay=0.05, max_elapsed=1000)
    )
    attempts: list[int] = []
    first = asyncio.Event()

    @slow
    async def always_down() -> None:
        attempts.append(1)
        first.set()
        raise ConnectionError("down")

    @app.http.get("/work")
    async def work() -> str:
        try:
            await always_down()
        except ConnectionError:
            return "gave up"
        return "never"

    client = TestApp(app)
    await client.__aenter__()
    assert client.runtime is not None
    request = asyncio.ensure_future(client.get("/work"))
    await first.wait()
    clean = await client.runtime.stop()
    response = await request
    await client.aclose()
    assert response.json() == "gave up"  # the retry gave up inside the grace period
    assert clean is True  # so nothing had to be cancelled
    assert 1 < len(attempts) < 20


def test_policy_names_are_unique() -> None:
    app = App("svc")
    app.policy("a", retry=Retry())
    with pytest.raises(ValueError, match="already declared"):
        app.policy("a")
