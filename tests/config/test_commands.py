"""``config show`` and ``config check`` behind the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, SecretStr

from cordio import Settings
from cordio.config import ConfigPolicy, ConfigSources, EnvSource, FileSource, load_config
from cordio.config.commands import check_files, show_config


class Db(Settings, section="db"):
    url: str = "sqlite:///x.db"
    port: int = 5432
    password: SecretStr = SecretStr("")
    api_token: str = ""


class Cors(Settings, section="cors"):
    allow_credentials: bool = False
    credentials: str = "x"


def test_a_boolean_is_shown_whatever_its_key_says() -> None:
    """A key matching a masking word (``credential``) hides its value, unless the value is a
    boolean, which holds no secret (``http.cors.allow_credentials``)."""
    config = load_config([Cors], [EnvSource("svc", environ={"SVC__CORS__ALLOW_CREDENTIALS": "1"})])
    as_json = json.loads(show_config(config, fmt="json"))
    assert as_json["cors.allow_credentials"]["value"] is True
    assert as_json["cors.credentials"]["value"] == "**********"
    assert {k: v for k, v, _ in config.items()}["cors.allow_credentials"] is True


def test_show_every_value_with_its_source_secrets_masked(tmp_path: Path) -> None:
    env = {
        "SVC__DB__URL": "postgresql://u:hunter2@h/db",
        "SVC__DB__PASSWORD": "hunter2",
        "SVC__DB__API_TOKEN": "hunter2",
    }
    config = load_config([Db], [EnvSource("svc", environ=env)])
    table = show_config(config)
    assert "hunter2" not in table
    assert [line.split() for line in table.splitlines()] == [
        ["key", "value", "layer", "source"],
        ["db.url", '"postgresql://u:**********@h/db"', "env", "env:SVC__DB__URL"],
        ["db.port", "5432", "default", "default"],
        ["db.password", '"**********"', "env", "env:SVC__DB__PASSWORD"],
        ["db.api_token", '"**********"', "env", "env:SVC__DB__API_TOKEN"],
    ]
    as_json = json.loads(show_config(config, fmt="json"))
    assert as_json["db.url"] == {
        "value": "postgresql://u:**********@h/db",
        "source": "env:SVC__DB__URL",
        "layer": "env",
    }
    assert as_json["db.password"]["value"] == "**********"
    assert as_json["db.api_token"]["value"] == "**********"
    assert as_json["db.port"] == {"value": 5432, "source": "default", "layer": "default"}
    assert yaml.safe_load(show_config(config, fmt="yaml", section="db")) == as_json


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_check_reports_every_error_with_file_line_and_key(tmp_path: Path) -> None:
    write(tmp_path, "config/main.toml", "[db]\nurl = 'x'\nport = 'many'\ncolour = 'red'\n")
    write(tmp_path, "etc/db.yaml", "url: y\n")
    write(tmp_path, "etc/broken.json", "{ not json")
    sources = ConfigSources([FileSource(root=tmp_path)], ConfigPolicy())
    errors, warnings = check_files([Db], sources)
    main = tmp_path / "config" / "main.toml"
    assert errors[0].startswith(f"{tmp_path}/etc/broken.json:1: invalid JSON: ")
    assert [e.split(":")[0] for e in errors[1:5]] == [
        "  and invalid TOML",
        "  and invalid YAML",
        "  and invalid JSON with comments",
        "  and invalid INI",
    ]
    assert errors[5:] == [
        f"{main}:2: db.url is also set by {tmp_path}/etc/db.yaml:1",
        f"{main}:3: db.port: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert warnings == [f"{main}:4: db.colour: unknown key"]


def test_check_given_files_only_and_clean_files(tmp_path: Path) -> None:
    write(tmp_path, "config/main.toml", "[db]\nport = 'bad'\n")
    good = write(tmp_path, "good.yaml", "db:\n  port: 1\n")
    sources = ConfigSources([FileSource(root=tmp_path)])
    assert check_files([Db], sources, [good]) == ([], [])
    assert check_files([Db], sources) == (
        [
            f"{tmp_path}/config/main.toml:2: db.port: Input should be a valid integer,"
            " unable to parse string as an integer"
        ],
        [],
    )


def test_check_unknown_keys_as_errors_under_stop(tmp_path: Path) -> None:
    write(tmp_path, "config/main.toml", "[db]\ncolour = 'red'\n[other]\nx = 1\n")
    sources = ConfigSources([FileSource(root=tmp_path)], ConfigPolicy(unknown="stop"))
    errors, warnings = check_files([Db], sources)
    main = tmp_path / "config" / "main.toml"
    assert warnings == []
    # each names the file and line, as every other error does
    assert errors == [f"{main}:2: db.colour: unknown key", f"{main}:4: other: unknown key"]


class Queue(BaseModel):
    kind: str = "classic"
    token: SecretStr = SecretStr("")
    bindings: list[str] = []


class Broker(Settings, section="broker"):
    queues: dict[str, Queue] = {}


def test_nested_models_show_as_plain_data_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "main.toml").write_text(
        '[broker.queues."orders.created"]\nkind = "quorum"\ntoken = "hunter2"\nbindings = ["a"]\n'
    )
    config = load_config([Broker], [FileSource(patterns=(str(tmp_path / "main.toml"),))])
    shown = json.loads(show_config(config, fmt="json"))["broker.queues"]
    assert shown["value"] == {
        "orders.created": {"kind": "quorum", "token": "**********", "bindings": ["a"]}
    }
    assert shown["source"].startswith(f"file:{tmp_path}/main.toml:")
    assert "hunter2" not in show_config(config)


class StrictQueue(BaseModel):
    kind: Literal["classic", "quorum"] = "classic"


class StrictBroker(Settings, section="broker"):
    queues: dict[str, StrictQueue] = {}


def test_check_names_the_line_of_a_bad_value_in_a_nested_table(tmp_path: Path) -> None:
    path = tmp_path / "main.toml"
    path.write_text('[broker.queues."orders.created"]\n\nkind = "lazy"\n')
    sources = ConfigSources([FileSource(patterns=(str(path),))])
    errors, _ = check_files([StrictBroker], sources, [path])
    assert errors == [
        f"{path}:3: broker.queues.orders.created.kind: Input should be 'classic' or 'quorum'"
    ]
