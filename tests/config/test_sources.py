"""Reading config files and environment variables, with hostile files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cordio.config import EnvSource, FileSource
from cordio.config.sources import env_prefix
from cordio.errors import ConfigError


def write(root: Path, name: str, data: bytes) -> Path:
    path = root / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_files_by_glob_sorted_by_base_name(tmp_path: Path) -> None:
    write(tmp_path, "b/main.toml", b"[db]\nurl = 'b'\n")
    write(tmp_path, "a/main.toml", b"[db]\nurl = 'a'\npool = 2\n")
    layers = FileSource(root=tmp_path).read()
    assert [layer.values["db"]["url"] for layer in layers] == ["a", "b"]
    assert layers[0].origins["db.pool"] == f"file:{tmp_path}/config/a/main.toml:3"


def test_bom_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "main.toml", b"\xef\xbb\xbf[db]\nurl = 'x'\n")
    assert FileSource(root=tmp_path).read()[0].values == {"db": {"url": "x"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[db\nurl = 1", "invalid TOML"),
        (b"[db]\nurl = 'a'\x00\n", "NUL bytes"),
        (b"[db]\nurl = '\xff\xfe'\n", "not UTF-8 at byte"),
        (b"[db]\nurl = 1\nurl = 2\n", "invalid TOML"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, "main.toml", data)
    with pytest.raises(ConfigError) as info:
        FileSource(root=tmp_path).read()
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_oversized_file_and_directory(tmp_path: Path) -> None:
    write(tmp_path, "main.toml", b"# " + b"x" * 2000 + b"\n")
    with pytest.raises(ConfigError, match="over the limit of 1000"):
        FileSource(root=tmp_path, max_bytes=1000).read()
    other = tmp_path / "other"
    (other / "config" / "main.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a directory"):
        FileSource(root=other).read()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_any_bytes_load_or_raise_config_error(tmp_path: Path, data: bytes) -> None:
    write(tmp_path, "main.toml", data)
    try:
        FileSource(root=tmp_path).read()
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "main.toml" in message


def test_env_names_nesting_and_json() -> None:
    environ = {
        "SVC__DB__URL": "postgresql://x",
        "svc__db__pool": "5",
        "SVC__HTTP__LIMITS__BURST": "10",
        "SVC__TAGS__LIST": '["a", "b"]',
        "OTHER__DB__URL": "ignored",
    }
    (layer,) = EnvSource("svc", environ=environ).read()
    assert layer.values == {
        "db": {"url": "postgresql://x", "pool": "5"},
        "http": {"limits": {"burst": "10"}},
        "tags": {"list": ["a", "b"]},
    }
    assert layer.origins["db.pool"] == "env:svc__db__pool"


def test_bad_env_names_and_json_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        EnvSource("svc", environ={"SVC__NOKEY": "1", "SVC__A__B": "[1,", "SVC____X": "1"}).read()
    assert info.value.problems == [
        "env:SVC__A__B: invalid JSON: Expecting value: line 1 column 4 (char 3)",
        "env:SVC__NOKEY: expected SVC__<SECTION>__<KEY>",
        "env:SVC____X: expected SVC__<SECTION>__<KEY>",
    ]


def test_env_prefix() -> None:
    assert env_prefix("orders") == "ORDERS__"
    assert env_prefix("my-svc.v2") == "MY_SVC_V2__"
