"""Find an app from a command-line target: ``pkg.module:app`` or ``path/to/file.py:app``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any


class TargetError(Exception):
    """The target cannot be imported or does not name an App."""


def load_target(target: str) -> Any:
    """Import ``target`` and return the object it names.

    ``module:attr`` imports ``module`` (the current directory is put on ``sys.path`` first);
    ``file.py:attr`` executes the file as a module. ``attr`` defaults to ``app``.

    Raises:
        TargetError: naming what is missing: the module, the file or the attribute.
    """
    spec, _, attr = target.partition(":")
    attr = attr or "app"
    if not spec:
        raise TargetError(f"target {target!r}: expected 'pkg.module:app' or 'file.py:app'")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise TargetError(f"target {target!r}: no such file {path}")
        name = path.stem
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise TargetError(f"target {target!r}: cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            if exc.name and spec.startswith(exc.name):
                raise TargetError(f"target {target!r}: no module named {exc.name!r}") from None
            raise
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"target {target!r}: {spec} has no attribute {attr!r}") from None
    return obj
