"""The public API: ``__all__`` is honest and ``import cordio`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cordio


def test_all_names_resolve() -> None:
    for name in cordio.__all__:
        assert getattr(cordio, name) is not None, name


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = cordio.Nope  # type: ignore[attr-defined]


def test_import_cordio_loads_no_framework() -> None:
    code = (
        "import sys, cordio; "
        "print(','.join(m for m in ('pydantic', 'starlette', 'uvicorn', 'httpx') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
