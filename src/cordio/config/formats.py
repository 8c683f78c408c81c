"""Config file formats: TOML, INI, YAML, JSON and JSON with comments, with line numbers.

Each parser returns the values and, per key path, the line it was set on (1-based), so every
value can name where it came from. Parsing is bounded: documents nested deeper than
:data:`MAX_DEPTH` and YAML documents whose aliases expand beyond :data:`MAX_NODES` nodes
("billion laughs") are refused with a :class:`FormatError`, never expanded.

Values come from the standard parsers (tomllib, configparser, PyYAML's safe loader, json);
only line numbers are found by a light scan of the text where the parser does not give them.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Deepest nesting of tables / mappings / lists accepted.
MAX_DEPTH = 32
#: Most YAML nodes visited, aliases expanded, before a document is refused.
MAX_NODES = 100_000

FORMATS = ("toml", "yaml", "json", "jsonc", "ini")
EXTENSIONS = {
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonc": "jsonc",
}

KeyPath = tuple[str, ...]


class FormatError(ValueError):
    """A document is not valid in a format.

    Attributes:
        line: 1-based line of the problem, when known.
        message: what is wrong.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass
class Parsed:
    """A parsed document: nested values and the line of each key path."""

    values: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)


def parse(text: str, fmt: str) -> Parsed:
    """Parse ``text`` as ``fmt`` (one of :data:`FORMATS`).

    Raises:
        FormatError: the text is not valid ``fmt``, holds a duplicate key, is nested deeper
            than :data:`MAX_DEPTH`, expands beyond :data:`MAX_NODES`, or its top level is not
            a mapping.
    """
    try:
        parsed = _PARSERS[fmt](text)
    except RecursionError:
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(parsed.values, 1)
    return parsed


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)


# -- TOML -----------------------------------------------------------------------------------

_TOML_LINE = re.compile(r"\(at line (\d+)")
_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _key_parts(dotted: str) -> KeyPath:
    return tuple(p.strip("\"'") for p in _KEY_PART.findall(dotted))


def _toml_lines(text: str, *, ini: bool = False) -> dict[KeyPath, int]:
    """Find the line of each key by scanning table headers and ``key =`` lines."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath | None = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _TOML_TABLE.match(line)
        if header:
            array = header.group(1) == "[["
            name = header.group(2)
            table = None if array else ((name.strip(),) if ini else _key_parts(name))
            if table:
                lines.setdefault(table, number)
            continue
        match = (
            _TOML_KEY.match(line) if not ini else re.match(r"^\s*([^=:;#\s][^=:]*?)\s*[=:]", line)
        )
        if match and table is not None:
            key = (match.group(1).strip(),) if ini else _key_parts(match.group(1))
            lines.setdefault((*table, *key), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_string = quote
    return lines


def _parse_toml(text: str) -> Parsed:
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise FormatError(str(exc), int(found.group(1)) if found else None) from None
    return Parsed(values, _toml_lines(text))


# -- INI ------------------------------------------------------------------------------------


def _ini_value(raw: str) -> Any:
    """INI as degenerate TOML: a value that is a valid TOML value is typed, else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _parse_ini(text: str) -> Parsed:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        errors = getattr(exc, "errors", None)  # ParsingError: (number, repr(line)) of each
        if errors:
            line, bad = errors[0][0], ast.literal_eval(errors[0][1]).rstrip("\r\n")
            raise FormatError(f"not a [section] or a key = value line: {bad!r}", line) from None
        line = getattr(exc, "lineno", None)
        raise FormatError(str(exc).splitlines()[0], line) from None
    values: dict[str, Any] = {}
    for section in parser.sections():
        values[section] = {k: _ini_value(v) for k, v in parser.items(section, raw=True)}
    return Parsed(values, _toml_lines(text, ini=True))


# -- YAML -----------------------------------------------------------------------------------


def _parse_yaml(text: str) -> Parsed:
    import yaml

    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise FormatError(str(exc).splitlines()[0]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return Parsed({})
        lines: dict[KeyPath, int] = {}
        budget = [MAX_NODES]
        _walk_yaml(node, (), lines, budget, 1)
        values = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise FormatError(f"{exc.context or ''} {exc.problem or ''}".strip(), line) from None
    except yaml.YAMLError as exc:
        raise FormatError(str(exc)) from None
    finally:
        loader.dispose()
    if not isinstance(values, dict):
        raise FormatError(f"the top level must be a mapping, not {type(values).__name__}", 1)
    return Parsed(values, lines)


def _walk_yaml(
    node: Any, path: KeyPath, lines: dict[KeyPath, int], budget: list[int], depth: int
) -> None:
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise FormatError(
            f"expands to more than {MAX_NODES} nodes (alias bomb?)", node.start_mark.line + 1
        )
    if depth > MAX_DEPTH:
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key == "<<":
                _walk_yaml(value_node, path, lines, budget, depth + 1)
                continue
            if key in seen:
                raise FormatError(
                    f"duplicate key {'.'.join((*path, key))!r}", key_node.start_mark.line + 1
                )
            seen.add(key)
            if path is not None:
                lines.setdefault((*path, key), key_node.start_mark.line + 1)
            _walk_yaml(value_node, (*path, key), lines, budget, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _walk_yaml(item, path, lines, budget, depth + 1)


# -- JSON and JSON with comments ------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments and trailing commas, keeping every newline."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            last_comma = -1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        elif c == ",":
            last_comma = i
        elif c in "}]" and last_comma >= 0:
            out[last_comma] = " "
            last_comma = -1
        elif not c.isspace():
            last_comma = -1
        i += 1
    return "".join(out)


def _json_lines(text: str) -> dict[KeyPath, int]:
    """Find the line of each object key reachable through objects only."""
    lines: dict[KeyPath, int] = {}
    stack: list[list[Any]] = []  # [container, current key]
    expect_key = False
    line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if stack and stack[-1][0] == "{" and expect_key:
                try:
                    key = json.loads(text[i : j + 1])
                except ValueError:
                    key = text[i + 1 : j]
                stack[-1][1] = key
                if all(entry[0] == "{" for entry in stack):
                    lines.setdefault(tuple(str(e[1]) for e in stack), line)
                expect_key = False
            i = j
        elif c in "{[":
            stack.append([c, None])
            expect_key = c == "{"
        elif c in "}]":
            if stack:
                stack.pop()
        elif c == "," and stack and stack[-1][0] == "{":
            expect_key = True
        i += 1
    return lines


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json(text: str) -> Parsed:
    try:
        values = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise FormatError(exc.msg, exc.lineno) from None
    if not isinstance(values, dict):
        raise FormatError(f"the top level must be an object, not {type(values).__name__}", 1)
    return Parsed(values, _json_lines(text))


def _parse_jsonc(text: str) -> Parsed:
    return _parse_json(_strip_comments(text))


_PARSERS = {
    "toml": _parse_toml,
    "ini": _parse_ini,
    "yaml": _parse_yaml,
    "json": _parse_json,
    "jsonc": _parse_jsonc,
}


def flatten(values: dict[str, Any], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Yield ``(key path, value)`` for every leaf (a non-mapping or an empty mapping)."""
    for key, value in values.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value:
            yield from flatten(value, path)
        else:
            yield path, value
