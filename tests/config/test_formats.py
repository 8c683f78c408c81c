"""Every config format, line numbers, and hostile documents."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cordio.config.formats import MAX_DEPTH, FormatError, parse

SAME = {"db": {"url": "postgresql://h/db", "port": 5432, "tags": ["a", "b"]}, "log": {"x": True}}

DOCS = {
    "toml": '[db]\nurl = "postgresql://h/db"\nport = 5432\ntags = ["a", "b"]\n[log]\nx = true\n',
    "ini": '[db]\nurl = postgresql://h/db\nport = 5432\ntags = ["a", "b"]\n[log]\nx = true\n',
    "yaml": "db:\n  url: postgresql://h/db\n  port: 5432\n  tags: [a, b]\nlog:\n  x: true\n",
    "json": '{"db": {\n "url": "postgresql://h/db",\n "port": 5432,\n "tags": ["a", "b"]},\n'
    '"log": {\n "x": true}}',
    "jsonc": '{"db": { /* db */ // settings\n "url": "postgresql://h/db",\n "port": 5432,\n'
    ' "tags": ["a", "b",],},\n"log": {\n "x": true,}}',
}


@pytest.mark.parametrize("fmt", sorted(DOCS))
def test_every_format_gives_the_same_values_and_lines(fmt: str) -> None:
    parsed = parse(DOCS[fmt], fmt)
    assert parsed.values == SAME
    assert parsed.lines[("db", "port")] == 3
    assert parsed.lines[("log", "x")] == 6


def test_toml_lines_for_dotted_keys_and_multiline_strings() -> None:
    text = '[a]\nb.c = 1\ns = """\nx = 2\n"""\nd = 3\n[[arr]]\ne = 4\n'
    lines = parse(text, "toml").lines
    assert lines[("a", "b", "c")] == 2
    assert lines[("a", "d")] == 6
    assert ("a", "x") not in lines
    assert ("arr", "e") not in lines


@pytest.mark.parametrize(
    ("fmt", "text", "line", "message"),
    [
        ("toml", "[db]\nurl = \n", 2, "Invalid value"),
        ("yaml", "db:\n  url: [1,\n", 3, "expected the node content"),
        ("json", '{"db":\n {"url": }}', 2, "Expecting value"),
        ("ini", "[db]\nno separator here\n", 2, "'no separator here'"),
        ("ini", "key = 1\n", 1, "no section headers"),
    ],
)
def test_malformed_documents_say_where(fmt: str, text: str, line: int, message: str) -> None:
    with pytest.raises(FormatError, match=f"^line {line}: ") as info:
        parse(text, fmt)
    assert info.value.line == line
    assert message in info.value.message


@pytest.mark.parametrize(
    ("fmt", "text", "line", "message"),
    [
        ("json", '{"a": 1, "a": 2}', None, "duplicate key 'a'"),
        ("jsonc", '{"a": 1, // x\n "a": 2}', None, "duplicate key 'a'"),
        ("yaml", "a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
        ("ini", "[s]\na = 1\na = 2\n", 3, "option 'a' in section 's' already exists"),
        ("toml", "a = 1\na = 2\n", 2, "Cannot overwrite a value"),
    ],
)
def test_duplicate_keys_in_one_document(
    fmt: str, text: str, line: int | None, message: str
) -> None:
    with pytest.raises(FormatError) as info:
        parse(text, fmt)
    assert info.value.line == line
    assert message in info.value.message


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    began = time.monotonic()
    with pytest.raises(FormatError, match="alias bomb"):
        parse("\n".join(lines), "yaml")
    assert time.monotonic() - began < 2


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "a: " + "[" * 3000 + "]" * 3000),
        ("json", "{" + '"a": {' * 3000 + "}" * 3001),
        ("toml", "a = " + "[" * 3000 + "]" * 3000),
        ("yaml", "a: &x [*x]"),
        ("json", '{"a": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}"),
    ],
)
def test_deep_or_recursive_documents_are_bounded(fmt: str, text: str) -> None:
    with pytest.raises(FormatError, match="nested deeper"):
        parse(text, fmt)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(FormatError, match="top level"):
        parse("[1, 2]", "json")
    with pytest.raises(FormatError, match="top level"):
        parse("- a\n- b\n", "yaml")


def test_ini_values_are_degenerate_toml() -> None:
    values = parse('[s]\nn = 5\nf = 1.5\nb = false\ns = plain text\nq = "quoted"\n', "ini")
    assert values.values == {"s": {"n": 5, "f": 1.5, "b": False, "s": "plain text", "q": "quoted"}}


@given(st.text(max_size=300), st.sampled_from(["toml", "yaml", "json", "jsonc", "ini"]))
def test_any_text_parses_or_raises_format_error(text: str, fmt: str) -> None:
    try:
        parsed = parse(text, fmt)
    except FormatError:
        return
    assert isinstance(parsed.values, dict)
