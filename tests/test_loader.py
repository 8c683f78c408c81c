"""Finding the app named by a command-line target."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cordio.loader import TargetError, load_target


def test_module_target_with_default_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "svc_mod_a.py").write_text("app = 'the app'\nother = 'other'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert load_target("svc_mod_a") == "the app"
    assert load_target("svc_mod_a:other") == "other"


def test_file_target_and_dotted_attribute(tmp_path: Path) -> None:
    target = tmp_path / "service_file.py"
    target.write_text("class Holder:\n    app = 42\n")
    assert load_target(f"{target}:Holder.app") == 42


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (":app", "expected 'pkg.module:app'"),
        ("surely_missing_module_xyz:app", "no module named 'surely_missing_module_xyz'"),
        ("json:nothing_here", "has no attribute 'nothing_here'"),
        ("/no/such/file.py:app", "no such file"),
    ],
)
def test_bad_targets_say_what_is_missing(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        load_target(target)


def test_import_errors_inside_the_module_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "svc_mod_broken.py").write_text("import surely_missing_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ModuleNotFoundError, match="surely_missing_dependency_xyz"):
        load_target("svc_mod_broken:app")
