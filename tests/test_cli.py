"""The `cordio` command: `run` targets and its usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cordio import __version__
from cordio.cli import main
from tests.test_lifecycle import REPO, run_cordio


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_run_without_target_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "TARGET" in result.output


@pytest.mark.slow
def test_cli_rejects_a_bad_target(tmp_path: Path) -> None:
    for target, message in [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("tests.apps.ticker:nothing", "has no attribute 'nothing'"),
        ("tests.apps.ticker:Clock", "not a cordio App"),
        (str(tmp_path / "missing.py") + ":app", "no such file"),
    ]:
        proc = run_cordio(target, REPO, {})
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2, out.decode()
        assert message in out.decode()
