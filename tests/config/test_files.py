"""Discovery of config files, format fallback, section files, policies, .env and CLI layers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from cordio import ConfigError, Settings
from cordio.config import (
    CliSource,
    ConfigPolicy,
    ConfigSources,
    DotEnvSource,
    EnvSource,
    FileSource,
    load_config,
)
from cordio.config.files import expand_braces


class Db(Settings, section="db"):
    url: str = "sqlite:///x.db"
    port: int = 5432
    password: SecretStr = SecretStr("")


class Web(Settings, section="web"):
    port: int = 8000
    debug: bool = False


class Needs(Settings, section="needs"):
    token: str


def put(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_brace_expansion() -> None:
    assert expand_braces("c/main.{json,yaml}") == ["c/main.json", "c/main.yaml"]
    assert expand_braces("{a,b}/{x,y}") == ["a/x", "a/y", "b/x", "b/y"]


def test_default_patterns_and_order_by_base_name(tmp_path: Path) -> None:
    put(tmp_path, "config/main.yaml", "web:\n  port: 1\n")
    put(tmp_path, "config/deep/er/main.json", '{"db": {"port": 2}}')
    put(tmp_path, "etc/a-extra.toml", "[web]\ndebug = true\n")
    put(tmp_path, "config/ignored.toml", "[web]\nport = 99\n")
    put(tmp_path, "etc/notes.txt", "not config")
    files = FileSource(root=tmp_path).files()
    assert [f.name for f in files] == ["a-extra.toml", "main.json", "main.yaml"]
    config = load_config([Db, Web], [FileSource(root=tmp_path)])
    assert (config.get(Web).port, config.get(Web).debug, config.get(Db).port) == (1, True, 2)
    assert config.explain("web.port") == f"file:{tmp_path}/config/main.yaml:2"
    assert config.explain("db.port") == f"file:{tmp_path}/config/deep/er/main.json:1"


def test_section_files_with_bare_keys_or_a_table(tmp_path: Path) -> None:
    put(tmp_path, "etc/db.toml", "url = 'postgresql://a'\nport = 1\n")
    put(tmp_path, "etc/web.yaml", "web:\n  port: 2\n")
    config = load_config([Db, Web], [FileSource(root=tmp_path)])
    assert config.get(Db).url == "postgresql://a"
    assert config.get(Web).port == 2
    assert config.explain("db.port") == f"file:{tmp_path}/etc/db.toml:2"


def test_a_wrong_extension_falls_back_to_a_format_that_parses(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "web:\n  port: 7\n")  # YAML in a .toml file
    explicit = put(tmp_path, "override", '{"web": {"debug": true}}')  # JSON, no extension
    config = load_config([Web], [FileSource(root=tmp_path, paths=(explicit,))])
    assert (config.get(Web).port, config.get(Web).debug) == (7, True)


def test_a_file_no_format_parses_lists_each_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(tmp_path, "config/main.json", "{ this is : not [ anything")
    with pytest.raises(ConfigError) as info:
        load_config([Web], [FileSource(root=tmp_path)])
    text = str(info.value)
    assert "main.json:1: invalid JSON" in text
    err = capsys.readouterr().err
    for name in ("JSON", "TOML", "YAML", "INI"):
        assert f"invalid {name}" in err


def test_parse_error_policy_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = put(tmp_path, "config/main.toml", "[web\n")
    put(tmp_path, "etc/web.toml", "port = 3\n")
    sources = ConfigSources([FileSource(root=tmp_path)], ConfigPolicy(parse_error="skip"))
    assert load_config([Web], sources).get(Web).port == 3
    (skipped,) = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped.levelname == "WARNING"
    assert skipped.getMessage().startswith(
        f"config file {broken} skipped: {broken}:1: invalid TOML"
    )


def test_duplicate_policy_stop_names_both_places(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "[web]\nport = 1\n")
    put(tmp_path, "etc/web.json", '{\n  "port": 2\n}')
    with pytest.raises(ConfigError) as info:
        load_config([Web], [FileSource(root=tmp_path)])
    message = str(info.value)
    assert f"web.port: set by file:{tmp_path}/config/main.toml:2" in message
    assert f"and by file:{tmp_path}/etc/web.json:2" in message


def test_duplicate_policy_last_wins_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put(tmp_path, "config/main.toml", "[web]\nport = 1\n")
    put(tmp_path, "etc/web.json", '{"port": 2}')
    sources = ConfigSources([FileSource(root=tmp_path)], ConfigPolicy(duplicate="last"))
    config = load_config([Web], sources)
    assert config.get(Web).port == 2
    assert config.explain("web.port") == f"file:{tmp_path}/etc/web.json:1"
    assert (
        f"config web.port: set by file:{tmp_path}/config/main.toml:2"
        f" and by file:{tmp_path}/etc/web.json:1; the later one wins"
    ) in caplog.text


def test_a_dangling_link_matching_the_glob_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    os.symlink(tmp_path / "missing.toml", tmp_path / "config" / "main.toml")
    with pytest.raises(ConfigError, match=r"main.toml: cannot read"):
        load_config([Web], [FileSource(root=tmp_path)])


def test_priority_file_env_dotenv_cli(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "[db]\nurl = 'file'\nport = 1\n[web]\nport = 1\n")
    put(tmp_path, ".env", "# comment\nSVC__DB__PORT=3\nSVC__WEB__PORT=3\nOTHER=1\n")
    sources = ConfigSources(
        [
            FileSource(root=tmp_path),
            EnvSource("svc", environ={"SVC__DB__URL": "env", "SVC__DB__PORT": "2"}),
            DotEnvSource("svc", tmp_path / ".env"),
            CliSource([(("web", "port"), "4", "--web.port")]),
        ]
    )
    config = load_config([Db, Web], sources)
    assert (config.get(Db).url, config.get(Db).port, config.get(Web).port) == ("env", 3, 4)
    assert config.explain("db.url") == "env:SVC__DB__URL"
    assert config.explain("db.port") == f".env:{tmp_path}/.env:2"
    assert config.explain("web.port") == "cli:--web.port"


def test_dotenv_errors_and_missing_file(tmp_path: Path) -> None:
    assert DotEnvSource("svc", tmp_path / "absent.env").read() == []
    put(tmp_path, ".env", "SVC__DB__PORT=1\nthis line is 'broken\n")
    with pytest.raises(ConfigError, match=r"\.env:2: cannot parse"):
        DotEnvSource("svc", tmp_path / ".env").read()


def test_missing_required_value_names_every_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([Needs], ConfigSources.default("svc", root=tmp_path))
    message = str(info.value)
    assert "needs.token: required, no source sets it" in message
    assert "a config file ([needs] token)" in message
    assert "env SVC__NEEDS__TOKEN" in message
    assert f"{tmp_path}/.env SVC__NEEDS__TOKEN" in message
    assert "--needs.token" in message


def test_with_command_line_keeps_order_and_replaces_env_file(tmp_path: Path) -> None:
    base = ConfigSources.default("svc", root=tmp_path)
    extra = tmp_path / "extra.toml"
    chain = base.with_command_line(
        CliSource(),
        config_files=[extra],
        env_file=tmp_path / "other.env",
        policy=ConfigPolicy(unknown="stop"),
    )
    kinds = [type(s).__name__ for s in chain.sources]
    assert kinds == ["FileSource", "EnvSource", "DotEnvSource", "CliSource"]
    assert chain.sources[0].overlays == (extra,)  # type: ignore[attr-defined]
    assert chain.sources[2].path == tmp_path / "other.env"  # type: ignore[attr-defined]
    assert chain.policy.unknown == "stop"
    assert base.policy.unknown == "warn"


def test_overlays_override_the_discovered_files_key_by_key(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "[db]\nurl = 'base'\nport = 1\n[web]\nport = 1\n")
    put(tmp_path, "config/main.prod.toml", "[db]\nport = 2\n")
    put(tmp_path, "etc/web.prod.toml", "port = 2\n")
    first = put(tmp_path, "deploy/prod.toml", "[db]\nport = 3\n[web]\ndebug = true\n")
    second = put(tmp_path, "deploy/late.toml", "[web]\ndebug = false\n")
    base = ConfigSources.default("svc", root=tmp_path)
    assert load_config([Db, Web], base).get(Db).port == 1  # profile files alone: not read
    chain = base.with_command_line(CliSource(), config_files=[first, second], profiles=["prod"])
    config = load_config([Db, Web], chain)
    assert (config.get(Db).url, config.get(Db).port) == ("base", 3)
    assert (config.get(Web).port, config.get(Web).debug) == (2, False)
    assert config.explain("db.url") == f"file:{tmp_path}/config/main.toml:2"
    assert config.explain("db.port") == f"file:{first}:2"
    assert config.explain("web.port") == f"file:{tmp_path}/etc/web.prod.toml:1"
    assert config.explain("web.debug") == f"file:{second}:2"
    layers = {k: config.layer_of(k) for k in ("db.url", "db.port", "web.port", "db.password")}
    assert layers == {
        "db.url": "file",
        "db.port": "overlay",
        "web.port": "overlay",
        "db.password": "default",
    }


def test_profiles_and_overlays_from_the_environment(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "[web]\nport = 1\n")
    put(tmp_path, "config/main.staging.toml", "[web]\nport = 2\n")
    put(tmp_path, "config/main.eu.yaml", "web:\n  debug: true\n")
    extra = put(tmp_path, "deploy/x.toml", "[web]\nport = 3\n")
    environ = {"SVC__PROFILE": "staging,eu", "SVC__WEB__DEBUG": "false"}
    source = FileSource(root=tmp_path, app_name="svc", environ=environ)
    env = EnvSource("svc", environ=environ)
    config = load_config([Web], [source, env])
    assert (config.get(Web).port, config.get(Web).debug) == (2, False)
    assert config.explain("web.port") == f"file:{tmp_path}/config/main.staging.toml:2"
    environ["SVC__CONFIG"] = str(extra)
    config = load_config([Web], [source, env])
    assert config.explain("web.port") == f"file:{extra}:2"


def test_the_duplicate_policy_stays_among_the_discovered_files(tmp_path: Path) -> None:
    put(tmp_path, "config/main.toml", "[web]\nport = 1\n")
    put(tmp_path, "etc/web.toml", "port = 2\n")
    overlay = put(tmp_path, "deploy/prod.toml", "[web]\nport = 3\n")
    sources = ConfigSources([FileSource(root=tmp_path, overlays=(overlay,))])
    with pytest.raises(ConfigError) as info:
        load_config([Web], sources)
    assert info.value.problems == [
        f"web.port: set by file:{tmp_path}/config/main.toml:2 and by"
        f" file:{tmp_path}/etc/web.toml:1 (policy: stop on duplicates)"
    ]


def test_a_missing_overlay_file_is_an_error_naming_it(tmp_path: Path) -> None:
    sources = [FileSource(root=tmp_path, overlays=(tmp_path / "nope.toml",))]
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read: No such file"):
        load_config([Web], sources)


def test_profile_in_a_dotenv_file_is_an_error_not_ignored(tmp_path: Path) -> None:
    put(tmp_path, ".env", "SVC__PROFILE=prod\n")
    with pytest.raises(ConfigError) as info:
        DotEnvSource("svc", tmp_path / ".env").read()
    assert info.value.problems == [
        f".env:{tmp_path}/.env:1: SVC__PROFILE is read from the environment only; set it"
        " there, or use --profile / --config"
    ]
