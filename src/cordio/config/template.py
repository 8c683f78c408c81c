"""Config file templates: every section and key, with descriptions, types and defaults.

Formats: TOML, YAML, JSON, INI. Placeholder styles (the spec's four):

- ``empty``: no value after the key (fill every one in);
- ``quoted``: quotes for strings, brackets for lists and tables, nothing for numbers and
  booleans;
- ``example``: a value that loads as it is: the default, the field's first example, or a
  value of its type;
- ``template``: a quoted template marker, ``"{{ db.url }}"``, for a renderer to fill.

JSON has no comments, so a JSON template carries values only.
"""

from __future__ import annotations

import copy
import datetime
import enum
import inspect
import json
import re
import textwrap
import typing
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cordio.settings import Settings

Format = Literal["toml", "yaml", "json", "ini"]
Placeholder = Literal["empty", "quoted", "example", "template"]


def _base(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType) and args:
        return _base(args[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return _base(typing.get_args(annotation)[0])
    return annotation


def _kind(annotation: Any) -> str:
    tp = _base(annotation)
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple, set, frozenset):
        return "list"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "table"
    if tp is bool:
        return "bool"
    if tp in (int, float):
        return "number"
    if origin is Literal:
        return "str" if isinstance(typing.get_args(tp)[0], str) else "number"
    return "str"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def plain_value(value: Any) -> Any:
    """A setting's value as plain JSON-able data (secrets empty)."""
    if isinstance(value, SecretStr | SecretBytes):
        return ""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return str(value)
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, set | frozenset | tuple | list):
        return [plain_value(item) for item in value]
    return value


def example_value(info: FieldInfo) -> Any:
    """A value for the field that validates: its default, first example, or a typed one."""
    if info.default is not PydanticUndefined:
        return plain_value(info.default)
    if info.default_factory is not None:
        return plain_value(info.default_factory())  # type: ignore[call-arg]
    if info.examples:
        return plain_value(info.examples[0])
    tp = _base(info.annotation)
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp)).value
    return {"list": [], "table": {}, "bool": False, "number": 0, "str": "example"}[
        _kind(info.annotation)
    ]


def _literal(value: Any, fmt: Format) -> str:
    if fmt == "yaml":
        return json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    if fmt in ("toml", "ini"):
        return _toml_literal(value)
    return json.dumps(value)


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return '""'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k)} = {_toml_literal(v)}"
                for k, v in value.items()
                if v is not None  # TOML has no null: an entry left out keeps its default
            )
            + "}"
        )
    return json.dumps(str(value))


def _placeholder(dotted: str, info: FieldInfo, style: Placeholder, fmt: Format) -> str | None:
    """The text after ``key =``, or ``None`` for no text at all (the ``empty`` style)."""
    if style == "empty":
        return None
    if style == "template":
        return json.dumps("{{ " + dotted + " }}")
    if style == "example":
        return _literal(example_value(info), fmt)
    kind = _kind(info.annotation)
    return {"str": '""', "list": "[]", "table": "{}"}.get(kind)


def attribute_docs(cls: type) -> dict[str, str]:
    """Field descriptions from the ``Attributes:`` part of a class docstring (Google style)."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    current = None
    inside = False
    for line in lines:
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break
        match = re.match(r"^    (\w+)(?: \([^)]*\))?: (.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and line.startswith("        "):
            docs[current] += " " + line.strip()
    return docs


def _describe(info: FieldInfo, fallback: str = "") -> list[str]:
    text = info.description or fallback
    lines = [line.strip() for line in textwrap.wrap(text, 88) if line.strip()]
    facts = f"type: {_type_name(info.annotation)}"
    if info.is_required():
        facts += ", required"
    else:
        default = (
            example_value(info)
            if info.default is not PydanticUndefined or (info.default_factory is not None)
            else None
        )
        facts += f", default: {json.dumps(default)}"
    return [*lines, facts]


def render_template(
    sections: Iterable[type[Settings]],
    *,
    fmt: Format = "toml",
    placeholders: Placeholder = "example",
    required_only: bool = False,
) -> str:
    """Render a template of ``sections``.

    Args:
        sections: section classes (sorted by name in the output).
        fmt: ``toml``, ``yaml``, ``json`` or ``ini``.
        placeholders: ``empty``, ``quoted``, ``example`` or ``template``.
        required_only: only fields without a default.

    Returns:
        The template text, ending with a newline.
    """
    chosen = []
    for cls in sorted(sections, key=lambda c: c.__section__):
        fields = [
            (name, info)
            for name, info in cls.model_fields.items()
            if info.is_required() or not required_only
        ]
        if fields:
            chosen.append((cls, fields))
    if fmt == "json":
        return _render_json(chosen, placeholders)
    comment = {"toml": "#", "ini": ";", "yaml": "#"}[fmt]
    out: list[str] = []
    for cls, fields in chosen:
        doc = (cls.__doc__ or "").strip().splitlines()
        if doc and cls.__doc__ != Settings.__doc__:
            out.append(f"{comment} {doc[0].replace('``', '')}")
        _render_table(out, cls, None, [cls.__section__], fields, fmt, placeholders, comment)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


#: Keys YAML 1.1 readers take for booleans unless quoted.
_YAML_WORDS = {"on", "off", "yes", "no", "y", "n", "true", "false"}


def _model_of(info: FieldInfo) -> type[BaseModel] | None:
    """The model a field is declared as (``http.cors``), else ``None``."""
    tp = _base(info.annotation)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _render_table(
    out: list[str],
    cls: type[BaseModel],
    values: BaseModel | None,
    path: list[str],
    fields: list[tuple[str, FieldInfo]],
    fmt: Format,
    placeholders: Placeholder,
    comment: str,
) -> None:
    """One table: its keys, then (TOML and YAML) each field declared as a model as a
    sub-table ``[section.field]`` of its own keys; ``values`` holds the defaults of a
    sub-table (the enclosing field's default), else each field's own default applies."""
    depth = len(path) - 1
    indent = "  " * (depth + 1) if fmt == "yaml" else ""
    out.append(f"{'  ' * depth}{path[-1]}:" if fmt == "yaml" else f"[{'.'.join(path)}]")
    docs = attribute_docs(cls)
    nested: list[tuple[str, FieldInfo, type[BaseModel]]] = []
    for name, info in fields:
        default = info if values is None else _with_default(info, getattr(values, name))
        model = _model_of(info) if fmt != "ini" else None
        if model is not None and (info.is_required() or _default_of(default) is not None):
            nested.append((name, info, model))
            continue
        described = _describe(default, docs.get(name, ""))
        out.extend(f"{indent}{comment} {line}" for line in described)
        value = _placeholder(".".join([*path, name]), default, placeholders, fmt)
        sep = ":" if fmt == "yaml" else " ="
        key = json.dumps(name) if fmt == "yaml" and name.lower() in _YAML_WORDS else name
        line = f"{key}{sep}" + (f" {value}" if value is not None else "")
        unset = placeholders == "example" and fmt != "yaml" and _default_of(default) is None
        # TOML and INI have no null: a key whose default is none stays unset, commented
        out.append(
            f"{indent}{comment} {line}" if unset and not default.is_required() else indent + line
        )
    for name, info, model in nested:
        inner = getattr(values, name) if values is not None else _default_of(info)
        text = info.description or docs.get(name, "") or _summary(model)
        if fmt != "yaml":
            out.append("")
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
        out.extend(f"{indent}{comment} {line.strip()}" for line in textwrap.wrap(text, 88))
        sub_fields = list(model.model_fields.items())
        sub_values = inner if isinstance(inner, BaseModel) else None
        _render_table(out, model, sub_values, [*path, name], sub_fields, fmt, placeholders, comment)


def _summary(model: type[BaseModel]) -> str:
    """The first paragraph of a model's docstring, on one line."""
    doc = inspect.cleandoc(model.__doc__ or "")
    return " ".join(doc.split("\n\n", 1)[0].split())


def _default_of(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None


def _with_default(info: FieldInfo, value: Any) -> FieldInfo:
    """``info`` with ``value`` as its default (a sub-table's value from its parent)."""
    copied = copy.copy(info)
    copied.default = value
    copied.default_factory = None
    return copied


def _render_json(
    chosen: list[tuple[type[Settings], list[tuple[str, FieldInfo]]]], placeholders: Placeholder
) -> str:
    lines = ["{"]
    for i, (cls, fields) in enumerate(chosen):
        section = cls.__section__
        lines.append(f"  {json.dumps(section)}: {{")
        for j, (name, info) in enumerate(fields):
            value = _placeholder(f"{section}.{name}", info, placeholders, "json")
            comma = "," if j < len(fields) - 1 else ""
            lines.append(f"    {json.dumps(name)}: {value if value is not None else ''}{comma}")
        lines.append("  }" + ("," if i < len(chosen) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"
