"""The `cordio` command: `run` targets and its usage errors."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from cordio import __version__
from cordio.cli import main
from tests.conftest import free_port
from tests.test_lifecycle import REPO, run_cordio, wait_ready


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"cordio, version {__version__}\n"


def test_run_without_target_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "Error: Missing argument 'TARGET'." in result.output


@pytest.mark.slow
def test_cli_rejects_a_bad_target(tmp_path: Path) -> None:
    for target, message in [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("tests.apps.ticker:nothing", "has no attribute 'nothing'"),
        ("tests.apps.ticker:Clock", "not a cordio App"),
        (str(tmp_path / "missing.py") + ":app", "no such file"),
    ]:
        proc = run_cordio(target, REPO, {})
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2, out.decode()
        assert message in out.decode()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_config_show_with_cli_options_and_set(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ORDERS__SHOP__WORK_DELAY=0.25\n")
    code, out, err = invoke(
        "config",
        "show",
        "examples.orders:app",
        "--format",
        "json",
        "--db.url",
        "postgresql://app:hunter2@db/orders",
        "--set",
        "http.port=9000",
        "--no-admin.enabled",
        "--env-file",
        str(tmp_path / ".env"),
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["db.url"] == {
        "value": "postgresql://app:**********@db/orders",
        "source": "cli:--db.url",
        "layer": "cli",
    }
    assert shown["http.port"] == {"value": 9000, "source": "cli:--set http.port", "layer": "cli"}
    assert shown["admin.enabled"] == {
        "value": False,
        "source": "cli:--no-admin.enabled",
        "layer": "cli",
    }
    assert shown["shop.work_delay"]["source"] == f".env:{tmp_path}/.env:1"


def test_config_show_one_section_as_table() -> None:
    code, out, _ = invoke("config", "show", "examples.orders:app", "--section", "db")
    assert code == 0
    assert out.splitlines()[0].split() == ["key", "value", "layer", "source"]
    assert {line.split()[0] for line in out.splitlines()[1:]} == {"db.url", "db.pool_size"}
    code, _, err = invoke("config", "show", "examples.orders:app", "--section", "nope")
    assert code == 2
    assert "no section 'nope'" in err


def test_wrong_cli_values_are_reported_with_their_option() -> None:
    code, _, err = invoke("config", "show", "examples.orders:app", "--http.port", "eighty")
    assert code == 1
    assert "http.port: Input should be a valid integer" in err
    assert "(cli:--http.port)" in err
    code, _, err = invoke("config", "show", "examples.orders:app", "--set", "novalue")
    assert code == 2
    assert "expected section.key=value" in err
    code, _, err = invoke("config", "show", "examples.orders:app", "--no-such.option", "1")
    assert code == 2
    assert "No such option" in err


def test_template_then_check_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "orders.yaml"
    code, _, err = invoke(
        "config", "template", "examples.orders:app", "--format", "yaml", "-o", str(target)
    )
    assert code == 0, err
    assert "db:" in target.read_text()
    code, out, err = invoke("config", "check", "examples.orders:app", str(target))
    assert (code, out, err) == (0, "configuration files are valid\n", "")
    bad = tmp_path / "bad.toml"
    bad.write_text("[db]\npool_size = 0\n[http]\nport = 'x'\n")
    code, out, err = invoke("config", "check", "examples.orders:app", str(bad))
    assert (code, out) == (1, "")  # "invalid" must not pass for "valid"
    assert err.splitlines() == [
        f"error: {bad}:2: db.pool_size: Input should be greater than or equal to 1",
        f"error: {bad}:4: http.port: Input should be a valid integer,"
        " unable to parse string as an integer",
        "2 error(s)",
    ]
    code, out, err = invoke("config", "check", "examples.orders:app", str(bad), str(target))
    assert (code, out) == (1, "")
    # two files setting one key: the second names the first
    lines = target.read_text().splitlines()
    pool_line = lines.index("  pool_size: 10", lines.index("db:")) + 1
    port_line = lines.index("  port: 8000", lines.index("http:")) + 1
    assert f"error: {target}:{pool_line}: db.pool_size is also set by {bad}:2" in err
    assert f"error: {target}:{port_line}: http.port is also set by {bad}:4" in err
    assert err.endswith("4 error(s)\n")


def test_run_help_lists_the_apps_settings() -> None:
    code, out, _ = invoke("run", "examples.orders:app", "--help")
    assert code == 0
    assert "--db.url VALUE" in out
    assert "--shop.work_delay VALUE" in out
    assert "--admin.enabled / --no-admin.enabled" in out
    assert "--config" in out


@pytest.mark.slow
def test_run_with_settings_from_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    proc = run_cordio(
        "examples.orders:app",
        tmp_path,
        {},
        "--http.port",
        str(port),
        "--db.url",
        f"sqlite:///{tmp_path}/cli.db",
        "--set",
        "log.format=json",
    )
    body = wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
    assert body["resources"]["db_adapter"]["status"] == "up"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert (tmp_path / "cli.db").exists()


def test_messaging_dead_letters_commands_are_listed() -> None:
    code, out, _ = invoke("messaging", "dead-letters", "--help")
    assert code == 0
    commands = out.split("Commands:", 1)[1].split()
    assert [c for c in commands if c in {"list", "show", "replay", "purge"}] == [
        "list",
        "purge",
        "replay",
        "show",
    ]
    code, _, err = invoke("messaging", "dead-letters", "list")
    assert code == 2
    assert "Missing argument 'TARGET'" in err


def _base_and_prod(root: Path) -> Path:
    (root / "config").mkdir()
    (root / "config" / "main.toml").write_text(
        f"[db]\nurl = 'sqlite:///{root}/base.db'\npool_size = 5\n"
    )
    (root / "deploy").mkdir()
    prod = root / "deploy" / "prod.toml"
    prod.write_text(f"[db]\nurl = 'sqlite:///{root}/prod.db'\n")
    return prod


def test_config_show_names_the_overlay_that_won(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _base_and_prod(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ("config", "show", "examples.orders:app", "--section", "db", "--format", "json")
    code, out, err = invoke(*args, "--config", "deploy/prod.toml")
    assert code == 0, err
    assert json.loads(out) == {
        "db.url": {
            "value": f"sqlite:///{tmp_path}/prod.db",
            "source": "file:deploy/prod.toml:2",
            "layer": "overlay",
        },
        "db.pool_size": {
            "value": 5,
            "source": f"file:{tmp_path}/config/main.toml:3",
            "layer": "file",
        },
    }
    code, out, err = invoke(
        "config", "check", "examples.orders:app", "--config", "deploy/prod.toml"
    )
    assert (code, out, err) == (0, "configuration files are valid\n", "")


@pytest.mark.slow
def test_run_with_an_overlay_config_file(tmp_path: Path) -> None:
    _base_and_prod(tmp_path)
    port = free_port()
    proc = run_cordio(
        "examples.orders:app",
        tmp_path,
        {},
        "--config",
        "deploy/prod.toml",
        "--http.port",
        str(port),
    )
    body = wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
    assert body["resources"]["db_adapter"]["status"] == "up"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert (tmp_path / "prod.db").exists()
    assert not (tmp_path / "base.db").exists()


NEEDS_APP = """
from cordio import App, Settings


class NeedsSettings(Settings, section="needs"):
    token: str
    region: str
    level: int = 3


app = App("needs")


@app.http.get("/x")
async def x(cfg: NeedsSettings) -> dict[str, int]:
    return {"level": cfg.level}
"""


def test_config_show_shows_every_value_and_marks_the_missing_ones(tmp_path: Path) -> None:
    target = tmp_path / "needs_app.py"
    target.write_text(NEEDS_APP)
    code, out, err = invoke(
        "config", "show", f"{target}:app", "--format", "json", "--set", "needs.level=4"
    )
    assert code == 1
    shown = json.loads(out)
    missing = {"value": None, "source": "required, no source sets it", "layer": "missing"}
    assert shown["needs.token"] == missing
    assert shown["needs.region"] == missing
    assert shown["needs.level"] == {"value": 4, "source": "cli:--set needs.level", "layer": "cli"}
    assert shown["http.port"] == {"value": 8000, "source": "default", "layer": "default"}
    lines = err.splitlines()
    assert [line.split(";")[0] for line in lines] == [
        "missing: needs.token: required, no source sets it",
        "missing: needs.region: required, no source sets it",
    ]
    assert "env NEEDS__NEEDS__TOKEN" in lines[0]
    code, out, _ = invoke("config", "show", f"{target}:app", "--section", "needs")
    assert code == 1
    assert out.splitlines()[1].split() == [
        "needs.token",
        "null",
        "missing",
        "required,",
        "no",
        "source",
        "sets",
        "it",
    ]


@pytest.mark.slow
def test_a_start_up_error_before_logging_is_set_up_is_in_the_apps_log_format(
    tmp_path: Path,
) -> None:
    bad = {"ORDERS__HTTP__PORT": "eighty"}
    proc = run_cordio("examples.orders:app", tmp_path, {**bad, "ORDERS__LOG__FORMAT": "json"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert (record["level"], record["logger"], record["app"]) == ("ERROR", "cordio.app", "orders")
    assert record["message"] == (
        "invalid configuration (1 problem):\n  http.port: Input should be a valid integer,"
        " unable to parse string as an integer (env:ORDERS__HTTP__PORT)"
    )
    proc = run_cordio("examples.orders:app", tmp_path, bad)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    first = out.decode().splitlines()[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d ERROR   cordio\.app \[orders\] invalid configuration \(1 problem\):", first
    ), first


def test_start_up_warnings_and_errors_are_in_the_apps_format_even_with_a_broken_file(
    tmp_path: Path,
) -> None:
    """What start-up says before the whole configuration is loaded — an unknown key's
    warning, a file that does not parse — is in the format LOG__FORMAT asks for."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "main.toml").write_text("[nosuch]\nvalue = 1\n")
    env = {"ORDERS__LOG__FORMAT": "json", "ORDERS__HTTP__PORT": "eighty"}
    proc = run_cordio("examples.orders:app", tmp_path, env)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["level"], r["logger"]) for r in records] == [
        ("WARNING", "cordio.config"),
        ("ERROR", "cordio.app"),
    ]
    assert "nosuch" in records[0]["message"]
    (tmp_path / "config" / "main.toml").write_text("[db\nurl = 'x'\n")  # does not parse
    proc = run_cordio("examples.orders:app", tmp_path, {"ORDERS__LOG__FORMAT": "json"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    logged = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert len(logged) == 1, out.decode()
    assert json.loads(logged[0])["message"].startswith("invalid configuration")


def test_a_missing_secret_is_named_in_the_start_up_error(tmp_path: Path) -> None:
    """The error names the secret key; only values are masked, and there is none."""
    app_file = tmp_path / "secret_app.py"
    app_file.write_text(
        "from pydantic import SecretStr\n"
        "from cordio import App, Settings\n\n"
        "class Notif(Settings, section='notif'):\n"
        "    api_token: SecretStr\n\n"
        "app = App('svc')\n\n"
        "@app.http.get('/x')\n"
        "async def x(cfg: Notif) -> int:\n"
        "    return 1\n"
    )
    proc = run_cordio(f"{app_file}:app", tmp_path, {})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    assert "notif.api_token: required, no source sets it" in out.decode()
    assert "--set notif.api_token=..." in out.decode()


def test_an_undeclared_policy_is_an_error_in_an_app_without_policies(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "main.toml").write_text("[policies.sending.retry]\nattempts = 3\n")
    app_file = tmp_path / "plain_app.py"
    app_file.write_text(
        "from cordio import App\n\napp = App('svc')\n\n"
        "@app.http.get('/x')\nasync def x() -> int:\n    return 1\n"
    )
    proc = run_cordio(f"{app_file}:app", tmp_path, {"SVC__HTTP__PORT": "0"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out.decode()
    assert "policies.sending: no policy of this name; the app declares none" in out.decode()
