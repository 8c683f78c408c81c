"""The package's surface: ``__all__`` says what is there, the wire format needs no pyzmq,
and the rest names the extra when pyzmq is missing."""

from __future__ import annotations

import subprocess
import sys

import cordio.zmq.mdp as mdp


def test_all_is_honest() -> None:
    assert sorted(mdp.__all__) == sorted(mdp._WHERE)
    for name in mdp.__all__:
        value = getattr(mdp, name)
        assert value.__name__ == name
        assert name in dir(mdp)
        doc = value.__dict__.get("__doc__")  # its own, not a base class's
        assert doc, f"cordio.zmq.mdp.{name} has no docstring"
        assert len(doc.strip()) >= 20


def test_without_pyzmq() -> None:
    script = """
import sys
sys.modules["zmq"] = None  # as if pyzmq were not installed
from cordio.zmq.mdp.frames import Ready, Version, parse
assert parse(Ready(Version.V01, b"echo").to_frames()) == Ready(Version.V01, b"echo")
from cordio.errors import MissingExtraError
try:
    from cordio.zmq.mdp import MDPBroker
except MissingExtraError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert "pip install 'cordio[zmq]'" in done.stdout
