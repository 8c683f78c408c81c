"""Merging sources, validating sections, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from cordio import ConfigError, Settings
from cordio.config import EnvSource, FileSource, load_config


class Db(Settings, section="db"):
    url: str = "sqlite:///x.db"
    port: int = 5432
    tags: list[str] = []
    password: SecretStr = SecretStr("")


class Http(Settings, section="web"):
    port: int = 8000


def toml(root: Path, text: str) -> None:
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "main.toml").write_text(text)


def test_priority_default_file_env(tmp_path: Path) -> None:
    toml(tmp_path, "[db]\nurl = 'from-file'\nport = 1\n")
    config = load_config(
        [Db, Http],
        [FileSource(root=tmp_path), EnvSource("svc", environ={"SVC__DB__PORT": "5433"})],
    )
    db = config.get(Db)
    assert (db.url, db.port) == ("from-file", 5433)
    assert config.explain("db.url") == f"file:{tmp_path}/config/main.toml:2"
    assert config.explain("db.port") == "env:SVC__DB__PORT"
    assert config.explain("web.port") == "default"
    with pytest.raises(KeyError, match=r"^'db\.nothing'$"):
        config.explain("db.nothing")


def test_every_bad_field_with_its_source_and_no_values(tmp_path: Path) -> None:
    toml(tmp_path, "[db]\nport = 'many'\n")
    environ = {"SVC__WEB__PORT": "eighty", "SVC__DB__PASSWORD": "[1, 2]", "SVC__DB__TAGS": "x"}
    with pytest.raises(ConfigError) as info:
        load_config([Db, Http], [FileSource(root=tmp_path), EnvSource("svc", environ=environ)])
    problems = info.value.problems
    assert len(problems) == 4
    text = str(info.value)
    assert "db.port: Input should be a valid integer" in text
    assert f"(file:{tmp_path}/config/main.toml:2)" in text
    assert "web.port" in text and "(env:SVC__WEB__PORT)" in text  # noqa: PT018
    assert "db.password" in text and "(env:SVC__DB__PASSWORD)" in text  # noqa: PT018
    assert "db.tags" in text
    assert "eighty" not in text
    assert "many" not in text


def test_unknown_keys_warn_or_stop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    environ = {"SVC__DB__COLOUR": "red", "SVC__NOSECTION__X": "1"}
    load_config([Db], [EnvSource("svc", environ=environ)])
    assert "db.colour: unknown key (env:SVC__DB__COLOUR)" in caplog.text
    assert "nosection: unknown key (env:SVC__NOSECTION__X)" in caplog.text
    caplog.clear()
    load_config([Db], [EnvSource("svc", environ=environ)], unknown="ignore")
    assert "unknown key" not in caplog.text
    with pytest.raises(ConfigError, match=r"db\.colour: unknown key"):
        load_config([Db], [EnvSource("svc", environ=environ)], unknown="stop")


def test_a_value_where_a_section_belongs(tmp_path: Path) -> None:
    toml(tmp_path, "db = 'postgresql://x'\n")
    with pytest.raises(ConfigError, match="db: expected a table of keys"):
        load_config([Db], [FileSource(root=tmp_path)])


def test_problems_from_several_sources_are_all_reported(tmp_path: Path) -> None:
    toml(tmp_path, "[db\n")
    with pytest.raises(ConfigError) as info:
        load_config(
            [Db],
            [FileSource(root=tmp_path), EnvSource("svc", environ={"SVC__DB__PORT": "x"})],
        )
    assert info.value.problems[0].startswith(f"{tmp_path}/config/main.toml:1: invalid TOML")
    assert info.value.problems[-1] == (
        "db.port: Input should be a valid integer, unable to parse string as an integer"
        " (env:SVC__DB__PORT)"
    )


def test_items_are_values_with_secrets_masked() -> None:
    env = {"SVC__DB__PASSWORD": "hunter2", "SVC__DB__URL": "postgresql://u:hunter2@h/db"}
    config = load_config([Db], [EnvSource("svc", environ=env)])
    assert config.items() == [
        ("db.url", "postgresql://u:**********@h/db", "env:SVC__DB__URL"),
        ("db.port", 5432, "default"),
        ("db.tags", [], "default"),
        ("db.password", "**********", "env:SVC__DB__PASSWORD"),
    ]
    assert config.get(Db).password.get_secret_value() == "hunter2"


class Required(Settings, section="req"):
    token: str
    region: str
    level: int = 3


def test_allow_missing_keeps_every_other_value_and_names_the_missing_keys() -> None:
    env = EnvSource("svc", environ={"SVC__REQ__LEVEL": "4", "SVC__DB__PORT": "1"})
    with pytest.raises(ConfigError, match=r"req\.token: required, no source sets it"):
        load_config([Db, Required], [env])
    config = load_config([Db, Required], [env], allow_missing=True)
    assert config.missing == ["req.token", "req.region"]
    req = config.get(Required)
    assert (req.token, req.region, req.level) == (None, None, 4)
    assert config.get(Db).port == 1
    bad = EnvSource("svc", environ={"SVC__REQ__LEVEL": "four"})
    with pytest.raises(ConfigError) as info:
        load_config([Required], [bad], allow_missing=True)
    assert [p.split(";")[0] for p in info.value.problems] == [
        "req.token: required, no source sets it",
        "req.region: required, no source sets it",
        "req.level: Input should be a valid integer, unable to parse string as an integer"
        " (env:SVC__REQ__LEVEL)",
    ]
