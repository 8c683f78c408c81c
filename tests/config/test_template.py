"""Config templates in every format and placeholder style load back once filled in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from cordio import Settings
from cordio.config import FileSource, load_config
from cordio.config.template import attribute_docs, render_template


class Store(Settings, section="store"):
    """Where things are kept.

    Attributes:
        mode: how to open it.
    """

    url: str = Field(description="database URL", examples=["postgresql://h/db"])
    pool: int = Field(4, ge=1, description="connections")
    replicas: list[str] = []
    verbose: bool = False
    mode: Literal["rw", "ro"] = "rw"
    password: SecretStr = SecretStr("")
    limits: dict[str, int] = {}


FILLED = {
    "store.url": "postgresql://h/db",
    "store.pool": 2,
    "store.replicas": ["r1"],
    "store.verbose": True,
    "store.mode": "ro",
    "store.password": "pw",
    "store.limits": {"a": 1},
}
EXT = {"toml": "toml", "yaml": "yaml", "json": "json", "ini": "ini"}


def literal(value: object, fmt: str) -> str:
    if fmt in ("toml", "ini"):
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, dict):
            return "{" + ", ".join(f'"{k}" = {v}' for k, v in value.items()) + "}"
        return json.dumps(value)
    return json.dumps(value)


def fill(text: str, fmt: str, style: str) -> str:
    """Fill every placeholder the way a person would: a value after each key."""
    out = []
    for line in text.splitlines():
        match = re.match(r'^(\s*)"?(\w+)"?(\s*[:=]\s*)(.*?)(,?)$', line)
        key = f"store.{match.group(2)}" if match else None
        if match and key in FILLED and not line.lstrip().startswith(("#", ";")):
            indent, name, sep, _, comma = match.groups()
            if fmt == "json":
                line = f'{indent}"{name}": {literal(FILLED[key], fmt)}{comma}'
            else:
                line = f"{indent}{name}{sep.rstrip()} {literal(FILLED[key], fmt)}"
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json", "ini"])
@pytest.mark.parametrize("style", ["empty", "quoted", "example", "template"])
def test_template_round_trip(tmp_path: Path, fmt: str, style: str) -> None:
    text = render_template([Store], fmt=fmt, placeholders=style)  # type: ignore[arg-type]
    if style == "template":
        assert '"{{ store.url }}"' in text
    path = tmp_path / "config" / f"main.{EXT[fmt]}"
    path.parent.mkdir()
    path.write_text(fill(text, fmt, style))
    store = load_config([Store], [FileSource(root=tmp_path, patterns=("config/main.*",))]).get(
        Store
    )
    assert {
        "store.url": store.url,
        "store.pool": store.pool,
        "store.replicas": store.replicas,
        "store.verbose": store.verbose,
        "store.mode": store.mode,
        "store.password": store.password.get_secret_value(),
        "store.limits": store.limits,
    } == FILLED  # every key the person filled in, none lost


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json", "ini"])
def test_example_template_loads_as_it_is(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "config" / f"main.{EXT[fmt]}"
    path.parent.mkdir()
    path.write_text(render_template([Store], fmt=fmt, placeholders="example"))  # type: ignore[arg-type]
    store = load_config([Store], [FileSource(root=tmp_path, patterns=("config/main.*",))]).get(
        Store
    )
    assert store.url == "postgresql://h/db"  # the field's example
    assert store.pool == 4  # the default


def test_descriptions_types_defaults_and_required_only() -> None:
    text = render_template([Store], fmt="toml", placeholders="quoted")
    assert "# Where things are kept." in text
    assert '# database URL\n# type: str, required\nurl = ""' in text
    assert "# connections\n# type: int, default: 4\npool =\n" in text
    assert "# how to open it." in text
    assert "replicas = []" in text
    required = render_template([Store], fmt="yaml", placeholders="empty", required_only=True)
    assert "url:" in required
    assert "pool" not in required


def test_attribute_docs() -> None:
    assert attribute_docs(Store) == {"mode": "how to open it."}


class Window(BaseModel):
    """How often, at most."""

    lines: int = 10
    on: tuple[str, ...] | None = None


class Limited(Settings, section="limited"):
    """Rate limited."""

    name: str = "x"
    window: Window = Window(lines=5)
    extra: Window | None = None


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_nested_models_are_sub_tables_with_the_enclosing_default(tmp_path: Path, fmt: str) -> None:
    text = render_template([Limited], fmt=fmt)  # type: ignore[arg-type]
    if fmt == "toml":
        assert "\n# How often, at most.\n[limited.window]\n" in text
        assert "\nlines = 5\n" in text
        assert '\n# on = ""\n' in text  # no null in TOML: left unset
        assert '\n# extra = ""\n' in text
        assert "window = {" not in text
    else:
        assert "\n  # How often, at most.\n  window:\n" in text
        assert "\n    lines: 5\n" in text
        assert '\n    "on": null\n' in text  # not the boolean YAML 1.1 reads in on
    path = tmp_path / f"main.{fmt}"
    path.write_text(text)
    loaded = load_config([Limited], [FileSource(patterns=(str(path),))]).get(Limited)
    assert loaded == Limited()
