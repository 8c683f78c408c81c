"""The configuration tools and the app read the same keys: ``config show``, ``config
template`` and ``config check`` see every section the app validates (its policies, HTTP,
messaging and logging alike), nested tables key by key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from cordio import ConfigError
from cordio.cli import main
from cordio.config import ConfigSources, FileSource
from cordio.loader import load_target
from cordio.testing import TestApp

APP = """
from cordio import App
from cordio.policy import Retry

app = App("tools")
sending = app.policy("sending", retry=Retry(attempts=2, max_delay=0.5))


@app.consume("orders.created")
@sending
async def on_created(event: dict[str, int]) -> None: ...


@app.http.get("/x")
async def x() -> dict[str, int]:
    return {}
"""

GOOD = """\
[http.cors]
max_age = 60

[broker]
prefetch = 7

[policies.sending.retry]
attempts = 3

[log.rate_limit]
lines = 4
"""

#: key → (value in GOOD, its line, an invalid value, the error it gets)
KEYS = {
    "http.cors.max_age": (60, 2, "-1", "Input should be greater than or equal to 0"),
    "broker.prefetch": (7, 5, "0", "Input should be greater than or equal to 1"),
    "policies.sending.retry.attempts": (3, 8, "0", "Input should be greater than or equal to 1"),
    "log.rate_limit.lines": (4, 11, "-1", "Input should be greater than or equal to 0"),
}


def _bad_text() -> str:
    text = GOOD
    for key, (value, _, bad, _) in KEYS.items():
        leaf = key.rsplit(".", 1)[1]
        text = text.replace(f"{leaf} = {value}\n", f"{leaf} = {bad}\n")
    return text + "\n[policies.sennding.retry]\nattempts = 2\n"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


async def test_show_template_check_and_the_app_walk_the_same_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tools_app.py").write_text(APP)
    (tmp_path / "config").mkdir()
    main_toml = tmp_path / "config" / "main.toml"
    main_toml.write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    target = f"{tmp_path / 'tools_app.py'}:app"

    # config show: every key, key by key, with its value and line
    code, out, err = invoke("config", "show", target, "--format", "json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    for key, (value, line, _, _) in KEYS.items():
        assert shown[key] == {"value": value, "source": f"file:{main_toml}:{line}", "layer": "file"}
    assert shown["policies.sending.retry.max_delay"]["value"] == 0.5  # the code's value
    code, out, _ = invoke("config", "show", target, "--section", "policies")
    assert code == 0
    assert [row.split()[0] for row in out.splitlines()[1:]] == [
        f"policies.sending.retry.{name}"
        for name in ("attempts", "initial_delay", "max_delay", "max_elapsed", "on", "give_up_on")
    ]

    # config template: a [sub.table] per nested model, the code's values, no warning
    code, out, err = invoke("config", "template", target)
    assert (code, err) == (0, "")
    for table in ("[http.cors]", "[broker]", "[policies.sending.retry]", "[log.rate_limit]"):
        assert f"\n{table}\n" in out
    assert "cors = {" not in out
    template = tomllib.loads(out)
    assert template["policies"]["sending"]["retry"]["attempts"] == 2
    assert template["policies"]["sending"]["retry"]["max_delay"] == 0.5
    for key in KEYS:
        node = template
        for part in key.split("."):
            node = node[part]
    (tmp_path / "template.toml").write_text(out)
    check = ("config", "check", target)
    assert invoke(*check, "template.toml") == (0, "configuration files are valid\n", "")

    # config check: the good file is valid; each bad value is an error naming its line
    assert invoke(*check) == (0, "configuration files are valid\n", "")
    bad = tmp_path / "bad.toml"
    bad.write_text(_bad_text())
    code, out, err = invoke(*check, str(bad))
    assert code == 1
    expected = [
        f"error: {bad}:{line}: {key}: {message}" for key, (_, line, _, message) in KEYS.items()
    ]
    expected.insert(
        2,
        f"error: {bad}:14: policies.sennding: no policy of this name; policies: ['sending']",
    )
    assert err.splitlines() == [*expected, "5 error(s)"]

    # the app itself: the same values apply, the same bad ones stop start-up
    app = load_target(target)
    async with TestApp(app) as client:
        assert client.app is app
        assert app.policies["sending"].retry is not None
        assert app.policies["sending"].retry.settings.attempts == 3
        assert app.policies["sending"].retry.settings.max_delay == 0.5
        assert app.config.get(type(app.config.sections["broker"])).prefetch == 7
    bad_sources = ConfigSources([FileSource(patterns=(), paths=(bad,))])
    with pytest.raises(ConfigError) as info:
        async with TestApp(load_target(target), config=bad_sources):
            pass
    problems = sorted(p.split(" (")[0] for p in info.value.problems)
    assert problems == sorted(f"{key}: {message}" for key, (_, _, _, message) in KEYS.items())
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(GOOD + "\n[policies.sennding.retry]\nattempts = 2\n")
    code, out, err = invoke("config", "show", target, "--config", str(unknown))
    assert code == 1
    assert "policies.sending.retry.attempts" in out
    assert err == (
        "error: policies.sennding: no policy of this name; policies: ['sending']"
        f" (file:{unknown}:14)\n"
    )
    with pytest.raises(ConfigError) as info:
        async with TestApp(load_target(target), config=[FileSource(patterns=(), paths=(unknown,))]):
            pass
    assert info.value.problems == [
        f"policies.sennding: no policy of this name; policies: ['sending'] (file:{unknown}:14)"
    ]
