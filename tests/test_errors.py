"""Error types and optional extras."""

from __future__ import annotations

import pytest

from cordio.errors import ConfigError, DependencyCycleError, MissingExtraError, require_extra


def test_missing_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'cordio\[postgres\]'") as info:
        require_extra("surely_not_installed_xyz.sub", feature="PostgreSQL", extra="postgres")
    assert isinstance(info.value, ImportError)
    assert info.value.__cause__ is None


def test_installed_module_is_returned() -> None:
    import json

    assert require_extra("json", feature="JSON", extra="none") is json


def test_config_error_lists_problems() -> None:
    error = ConfigError(["a.b: bad (env:X)", "c.d: worse (default)"])
    assert str(error).splitlines() == [
        "invalid configuration (2 problems):",
        "  a.b: bad (env:X)",
        "  c.d: worse (default)",
    ]


def test_cycle_error_shows_the_cycle() -> None:
    assert str(DependencyCycleError(["a", "b", "a"])) == "dependency cycle: a -> b -> a"


def test_a_file_no_format_parses_is_one_problem() -> None:
    from cordio import ConfigError

    error = ConfigError(["a.toml:1: invalid TOML: x", "  and invalid YAML: y", "b.toml:2: z"])
    assert str(error).splitlines()[0] == "invalid configuration (2 problems):"
