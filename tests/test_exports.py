"""The public API: ``__all__`` is honest and documented, and ``import cordio`` stays light and
works with only the core installed."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cordio

REPO = Path(__file__).resolve().parents[1]
# the top-level modules of every optional extra in pyproject.toml
EXTRAS = (
    "aiosqlite",
    "asyncpg",
    "uvloop",
    "httptools",
    "prometheus_client",
    "msgpack",
    "aio_pika",
    "aiormq",
    "nats",
    "redis",
    "opentelemetry",
    "sentry_sdk",
)


def test_all_lists_exactly_the_lazy_exports_and_dir_shows_them() -> None:
    exported = {name for name in cordio.__all__ if name != "__version__"}
    assert exported == set(cordio._EXPORTS)
    assert cordio.__all__ == sorted(cordio.__all__)
    assert dir(cordio) == cordio.__all__


@pytest.mark.parametrize("name", sorted(cordio._EXPORTS))
def test_each_name_is_the_object_of_its_defining_module(name: str) -> None:
    module = importlib.import_module(cordio._EXPORTS[name])
    value = getattr(cordio, name)
    assert value is getattr(module, name)
    assert value.__module__ == module.__name__  # defined there, not re-exported from elsewhere


@pytest.mark.parametrize("name", sorted(cordio._EXPORTS))
def test_each_name_has_a_docstring_of_its_own(name: str) -> None:
    value = getattr(cordio, name)
    # a class's own docstring, not one inherited from a base class
    doc = value.__dict__.get("__doc__") if isinstance(value, type) else value.__doc__
    assert doc, f"cordio.{name} has no docstring"
    assert len(doc.strip()) >= 20, f"cordio.{name}: {doc!r}"


def test_version_is_the_packages() -> None:
    from cordio._version import __version__

    assert cordio.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?", __version__), __version__


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match=r"^module 'cordio' has no attribute 'Nope'$"):
        _ = cordio.Nope  # type: ignore[attr-defined]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_import_cordio_loads_no_framework() -> None:
    out = run_python(
        """
        import sys, cordio
        print(','.join(m for m in ('pydantic', 'starlette', 'uvicorn', 'httpx')
                       if m in sys.modules))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "\n"


def test_the_core_imports_and_runs_without_any_extra() -> None:
    """With every extra's modules made unimportable, ``import cordio`` and every public name
    work, and an app with an HTTP handler and a message handler runs on the in-memory broker."""
    code = f"""
        import asyncio, importlib.abc, sys

        EXTRAS = {EXTRAS!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in EXTRAS:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        try:
            import msgpack
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("the block does not work")

        import cordio
        from cordio import *
        for name in cordio.__all__:
            getattr(cordio, name)
        from cordio.testing import TestApp

        app = cordio.App("svc")
        got = []

        @app.http.get("/")
        async def root() -> str:
            return "ok"

        @app.consume("jobs")
        async def job(body: dict) -> None:
            got.append(body)

        async def main() -> None:
            async with TestApp(app) as client:
                answer = (await client.get("/")).json()
                await client.publish("jobs", {{"n": 1}})
                await client.drained()
            print(answer, got)

        asyncio.run(main())
        """
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok [{'n': 1}]\n"
