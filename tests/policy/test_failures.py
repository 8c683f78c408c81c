"""Which exceptions are dependency failures: real exceptions from real clients and servers.

A caller's bad input never opens a breaker and is never retried; a dependency that really
fails still opens the breaker.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket

import httpx
import pytest
from pydantic import BaseModel

from cordio import App, ResourceUnavailableError
from cordio.config import EnvSource
from cordio.policy import CircuitBreaker, CircuitOpenError, PolicyTimeoutError, Retry
from cordio.policy.failures import FailureRule, is_caller_error, is_dependency_failure
from cordio.testing import TestApp
from tests.conftest import free_port


class PricingDown(Exception):
    """A client's own 'the dependency is down'."""


def status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://pricing.invalid/price")
    response = httpx.Response(status, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError(f"{status} did not raise")


async def connect_error() -> httpx.ConnectError:
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{free_port()}/")
        except httpx.ConnectError as exc:
            return exc
    raise AssertionError("a closed port accepted a connection")


async def invalid_url_error() -> Exception:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:1") as client:
        try:
            await client.get("/price/tea\x00\x1b")
        except httpx.InvalidURL as exc:
            return exc
    raise AssertionError("a control character made a valid URL")


def validation_error() -> Exception:
    class Order(BaseModel):
        quantity: int

    try:
        Order.model_validate({"quantity": "many"})
    except ValueError as exc:
        return exc
    raise AssertionError("'many' validated as an int")


async def test_failures_of_the_dependency() -> None:
    failures: list[BaseException] = [
        await connect_error(),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError(),
        PolicyTimeoutError("pricing: took longer than 1 s"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed connection without response"),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        status_error(500),
        status_error(503),
        ResourceUnavailableError("db is not set up"),
        CircuitOpenError("inner", 1.0, None),
    ]
    for exc in failures:
        assert is_dependency_failure(exc), exc
        assert not is_caller_error(exc), exc


async def test_a_callers_errors_are_not_failures() -> None:
    caller = [
        await invalid_url_error(),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'gopher://'."),
        validation_error(),
        ValueError("bad quantity"),
        TypeError("unhashable"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        json.JSONDecodeError("Expecting value", "x", 0),
        status_error(400),
        status_error(404),
        status_error(409),
        status_error(422),
    ]
    for exc in caller:
        assert is_caller_error(exc), exc
        assert not is_dependency_failure(exc), exc
    # neither: a plain bug is not the dependency's fault either
    for exc in [KeyError("x"), RuntimeError("bug"), FileNotFoundError(errno.ENOENT, "x")]:
        assert not is_dependency_failure(exc), exc
        assert not is_caller_error(exc), exc
    # 408 and 429 ask the client to come back: not its fault, not the dependency's failure
    for status in (408, 429):
        assert not is_caller_error(status_error(status))
        assert not is_dependency_failure(status_error(status))


def test_an_error_raised_from_a_failure_is_one() -> None:
    def raised_from(cause: Exception) -> LookupError:
        error = LookupError("could not publish")
        error.__cause__ = cause  # as `raise LookupError(...) from cause` sets it
        return error

    assert is_dependency_failure(raised_from(ConnectionResetError(errno.ECONNRESET, "reset")))
    assert not is_dependency_failure(raised_from(ValueError("cannot encode")))
    assert not is_dependency_failure(raised_from(RuntimeError("a bug")))


def test_rule_adds_and_removes_types_but_never_counts_a_callers_error() -> None:
    rule = FailureRule(failure_types=(PricingDown, KeyError), ignore_types=(TimeoutError,))
    assert rule(PricingDown())
    assert rule(ConnectionError())
    assert not rule(TimeoutError())
    assert not rule(PolicyTimeoutError("x"))  # a TimeoutError
    assert not rule(RuntimeError())
    assert not rule(asyncio.CancelledError())

    class BadKey(KeyError, ValueError):
        pass

    assert not rule(BadKey())  # listed as KeyError, but a ValueError: the caller's fault


async def test_a_flood_of_bad_requests_never_opens_the_breaker_a_real_outage_does() -> None:
    """The pricing client of a service: items with control characters make httpx raise
    InvalidURL; the breaker must not open for them. A real outage (nothing listening)
    opens it."""
    port = free_port()
    breaker = CircuitBreaker("pricing", consecutive_failures=5, recovery_time=60)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1) as client:

        @breaker
        async def price(item: str) -> float:
            response = await client.get(f"/price/{item}")
            response.raise_for_status()
            return float(response.json())

        for i in range(200):
            with pytest.raises(httpx.InvalidURL):
                await price(f"tea{i}\x00\x07")
        assert breaker.state == "closed"
        assert breaker.snapshot()["calls"] == 0  # not even counted as successes
        for _ in range(5):
            with pytest.raises(httpx.ConnectError):
                await price("tea")
        assert breaker.state == "open"
        with pytest.raises(CircuitOpenError):
            await price("tea")


async def test_4xx_answers_from_a_real_server_do_not_count_5xx_do() -> None:
    app = App("svc")
    status = {"code": 404}

    @app.http.get("/price")
    async def answer() -> dict[str, int]:
        from cordio.http import ProblemError

        raise ProblemError(status["code"], "as told")

    breaker = CircuitBreaker("pricing", consecutive_failures=3)
    retry = Retry(attempts=3, initial_delay=0, max_delay=0)
    async with TestApp(app) as client:
        calls = 0

        @breaker
        @retry
        async def price() -> None:
            nonlocal calls
            calls += 1
            (await client.get("/price")).raise_for_status()

        for _ in range(10):
            with pytest.raises(httpx.HTTPStatusError):
                await price()
        assert (breaker.state, calls) == ("closed", 10)  # never retried, never counted
        status["code"] = 503
        for _ in range(3):
            with pytest.raises(httpx.HTTPStatusError):
                await price()
        assert breaker.state == "open"
        assert calls == 10 + 3 * 3  # each 503 tried three times


async def test_retry_gives_up_at_once_on_a_callers_error() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = Retry(attempts=5, on=(KeyError,), sleep=sleep)
    calls = 0

    async def bad() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("quantity must be positive")

    with pytest.raises(ValueError, match=r"^quantity must be positive$"):
        await retry.call(bad)
    assert (calls, slept) == (1, [])

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "ok"

    calls = 0
    assert await retry.call(flaky) == "ok"
    assert (calls, len(slept)) == (4, 3)


async def test_failure_and_ignore_types_from_configuration() -> None:
    environ = {
        "SVC__POLICIES__PRICING__BREAKER__FAILURE_TYPES": f'["{__name__}.PricingDown"]',
        "SVC__POLICIES__PRICING__BREAKER__IGNORE_TYPES": '["ConnectionResetError"]',
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    pricing = app.policy("pricing", breaker=CircuitBreaker(consecutive_failures=2))
    raised: list[BaseException] = []

    @pricing
    async def fetch() -> None:
        raise raised[-1]

    @app.http.get("/price")
    async def price() -> str:
        try:
            await fetch()
        except CircuitOpenError:
            return "open"
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    async with TestApp(app) as client:
        raised.append(ConnectionResetError(errno.ECONNRESET, "reset"))
        for _ in range(5):
            assert (await client.get("/price")).json() == "ConnectionResetError"
        raised.append(PricingDown())
        assert [(await client.get("/price")).json() for _ in range(3)] == [
            "PricingDown",
            "PricingDown",
            "open",
        ]


async def test_retry_on_from_configuration_adds_types_but_never_a_callers_error() -> None:
    """``policies.<name>.retry.on`` widens what is retried, as ``Retry(on=...)`` does; a
    ValueError named there is still the caller's error and is not retried."""
    environ = {"SVC__POLICIES__PRICING__RETRY__ON": f'["{__name__}.PricingDown", "ValueError"]'}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    pricing = app.policy("pricing", retry=Retry(attempts=3, initial_delay=0, max_delay=0))
    raised: list[Exception] = []
    calls = 0

    @pricing
    async def fetch() -> None:
        nonlocal calls
        calls += 1
        raise raised[-1]

    @app.http.get("/price")
    async def price() -> str:
        nonlocal calls
        calls = 0
        try:
            await fetch()
        except Exception as exc:
            return f"{type(exc).__name__} after {calls}"
        return "ok"

    async with TestApp(app) as client:
        raised.append(PricingDown())
        assert (await client.get("/price")).json() == "PricingDown after 3"
        raised.append(ValueError("bad item"))
        assert (await client.get("/price")).json() == "ValueError after 1"
        raised.append(KeyError("x"))  # neither listed nor a dependency failure
        assert (await client.get("/price")).json() == "KeyError after 1"


async def test_unknown_exception_names_in_configuration_stop_start_up() -> None:
    from cordio import ConfigError

    environ = {"SVC__POLICIES__PRICING__BREAKER__FAILURE_TYPES": '["nowhere.Nothing"]'}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    app.policy("pricing", breaker=CircuitBreaker())

    @app.http.get("/")
    async def root() -> str:
        return "ok"

    with pytest.raises(ConfigError, match=r"policies\.pricing\.breaker\.failure_types"):
        async with TestApp(app):
            pass
