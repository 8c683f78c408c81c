"""Resolution of parameters, and the errors that stop start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pytest

from cordio import (
    AmbiguousDependencyError,
    App,
    Context,
    DependencyCycleError,
    DependencyError,
    Inject,
    MissingDependencyError,
    Settings,
)
from cordio.inject import start_order
from cordio.testing import TestApp


class Store:
    pass


class SqlStore(Store):
    pass


class Limits(Settings, section="limits"):
    per_minute: int = 60


async def test_by_type_then_by_name_and_subclasses() -> None:
    app = App("svc")
    app.resource(SqlStore(), name="primary")
    app.resource("just a string", name="label")

    @app.http.get("/")
    async def root(store: Store, label, limits: Limits) -> list[object]:  # type: ignore[no-untyped-def]
        return [type(store).__name__, label, limits.per_minute]

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == ["SqlStore", "just a string", 60]


async def test_name_disambiguates_several_of_one_type() -> None:
    app = App("svc")
    app.resource(Store(), name="primary")
    app.resource(Store(), name="replica")

    @app.http.get("/")
    async def root(replica: Store, chosen: Annotated[Store, Inject("primary")]) -> bool:
        return replica is app.get("replica") and chosen is app.get("primary")

    async with TestApp(app) as client:
        assert (await client.get("/")).json() is True


async def test_ambiguity_is_an_error_naming_the_candidates() -> None:
    app = App("svc")
    app.resource(Store(), name="primary")
    app.resource(Store(), name="replica")
    called = []

    @app.http.get("/")
    async def report(store: Store) -> None:
        called.append(1)

    with pytest.raises(AmbiguousDependencyError) as info:
        async with TestApp(app):
            pass
    assert str(info.value) == (
        "handler 'report': parameter 'store' of type Store matches resources"
        " ['primary', 'replica']; rename the parameter to one of them or use"
        " Annotated[..., Inject(name)]"
    )
    assert called == []


async def test_missing_dependency_names_handler_parameter_and_resources() -> None:
    app = App("svc")
    set_up = []

    @app.resource
    async def db() -> AsyncIterator[SqlStore]:
        set_up.append("db")
        yield SqlStore()

    class Mailer:
        pass

    @app.http.get("/")
    async def notify(db: SqlStore, mailer: Mailer) -> None:
        return None

    with pytest.raises(MissingDependencyError) as info:
        async with TestApp(app):
            pass
    message = str(info.value)
    assert "handler 'notify'" in message
    assert "parameter 'mailer' (" in message
    assert "db (SqlStore)" in message
    assert set_up == []


async def test_unknown_inject_name() -> None:
    app = App("svc")

    @app.http.get("/")
    async def root(store: Annotated[Store, Inject("nope")]) -> None:
        return None

    with pytest.raises(MissingDependencyError) as info:
        async with TestApp(app):
            pass
    assert str(info.value) == (
        "handler 'root': parameter 'store' asks for resource 'nope', which is not registered;"
        " registered: app_metrics (Metrics)"  # the app's metrics, injectable by type
    )


async def test_cycle_is_named() -> None:
    app = App("svc")

    @app.resource
    async def a(b: int) -> str:
        return "a"

    @app.resource
    async def b(a: str) -> int:
        return 1

    @app.http.get("/")
    async def root(a: str) -> str:
        return a

    with pytest.raises(DependencyCycleError) as info:
        async with TestApp(app):
            pass
    assert info.value.cycle == ["a", "b", "a"]  # from the handler's resource, round once
    assert str(info.value) == "dependency cycle: a -> b -> a"


async def test_defaults_context_and_unusable_signatures() -> None:
    app = App("svc")

    @app.http.get("/")
    async def root(ctx: Context, missing: Store | None = None) -> list[object]:
        return [ctx.handler, ctx.transport, missing]

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == ["root", "http", None]

    bad = App("svc")

    @bad.resource
    async def star(*args: int) -> str:
        return "x"

    @bad.http.get("/")
    async def uses(star: str) -> str:
        return star

    with pytest.raises(DependencyError, match=r"'args' must be a plain or keyword parameter"):
        async with TestApp(bad):
            pass


async def test_two_classes_with_one_section_name_conflict() -> None:
    class One(Settings, section="same"):
        a: int = 1

    class Two(Settings, section="same"):
        b: int = 2

    app = App("svc")

    @app.http.get("/")
    async def root(one: One, two: Two) -> None:
        return None

    with pytest.raises(AmbiguousDependencyError, match="section 'same'"):
        async with TestApp(app):
            pass


def test_start_order_waves() -> None:
    edges = {"api": ["db", "cache"], "db": ["pool"], "cache": [], "pool": []}
    assert start_order(["api"], edges) == [["cache", "pool"], ["db"], ["api"]]
    assert start_order(["cache"], edges) == [["cache"]]
    with pytest.raises(DependencyCycleError) as info:
        start_order(["api"], {"api": ["db"], "db": ["pool"], "pool": ["db"]})
    assert info.value.cycle == ["db", "pool", "db"]  # only the cycle, not the path to it
