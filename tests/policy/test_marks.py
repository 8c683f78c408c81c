"""policies_of: which policies wrap a function, outermost first, read without calling it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cordio.policy import Bulkhead, CircuitBreaker, OnError, Retry, Timeout, fallback, layer
from cordio.policy.marks import policies_of


async def price(item: str) -> str:
    return f"price of {item}"


def logged(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A decorator that is no policy, written with functools.wraps."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await func(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    "policy",
    [
        Retry(attempts=2),
        CircuitBreaker("pricing"),
        Timeout(1),
        Bulkhead(max_concurrent=1),
        OnError({KeyError: fallback("none")}),
        layer("pricing"),
    ],
    ids=lambda p: type(p).__name__,
)
async def test_each_policy_marks_the_wrapper_it_returns(policy: Any) -> None:
    wrapped = policy(price)
    assert policies_of(wrapped) == [policy]
    assert await wrapped("tea") == "price of tea"  # still the function it wraps


async def test_stacked_policies_are_listed_outermost_first_through_other_decorators() -> None:
    breaker, retry, limit = CircuitBreaker("pricing"), Retry(attempts=2), Timeout(1)
    fetch = breaker(logged(retry(limit(price))))
    assert policies_of(fetch) == [breaker, retry, limit]
    assert await fetch("tea") == "price of tea"


def test_an_undecorated_function_has_no_policies() -> None:
    assert policies_of(price) == []
    assert policies_of(logged(price)) == []


def test_a_policy_applied_twice_in_a_row_is_listed_once() -> None:
    retry = Retry(attempts=2)
    assert policies_of(retry(retry(price))) == [retry]


def test_a_wrapped_chain_that_loops_ends() -> None:
    async def first() -> None:
        return None

    async def second() -> None:
        return None

    first.__wrapped__ = second  # type: ignore[attr-defined]
    second.__wrapped__ = first  # type: ignore[attr-defined]
    assert policies_of(first) == []
