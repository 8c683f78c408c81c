"""Code in the docs runs: the test example of docs/testing.md is executed as a test."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


async def test_testing_page_example_runs(tmp_path: Path) -> None:
    text = (DOCS / "testing.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "docs/testing.md", "exec"), namespace)
    await namespace["test_create_order"](tmp_path)  # type: ignore[operator]


def test_messaging_page_settings_examples_are_valid() -> None:
    """Every TOML block of docs/messaging.md is a valid ``broker`` section."""
    import tomllib

    from cordio.messaging.settings import BrokerSettings

    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / "messaging.md").read_text(), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        BrokerSettings.model_validate(tomllib.loads(block)["broker"])


def _documented_keys(prefix: str, model: type) -> list[str]:
    """The keys of a settings model as the table names them: nested models key by key,
    mappings of models as ``<name>``."""
    import typing

    from pydantic import BaseModel

    keys = []
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        tp = info.annotation
        args = typing.get_args(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys += _documented_keys(f"{prefix}.{name}", tp)
        elif (
            typing.get_origin(tp) is dict
            and isinstance(args[1], type)
            and issubclass(args[1], BaseModel)
        ):
            keys.append(f"{prefix}.{name}.<name>")
        else:
            keys.append(f"{prefix}.{name}")
    return keys


def test_the_settings_table_lists_every_built_in_setting() -> None:
    """docs/settings.md's "Built-in sections" table names every key of every section the
    app itself brings (HTTP, admin, shutdown, logging, messaging, dedup, policies)."""
    from cordio import App
    from cordio.plan import build_plan
    from cordio.policy import Retry

    app = App("docs")
    app.policy("sending", retry=Retry(attempts=2))

    @app.consume("orders.created", dedup=True)
    async def on_created(event: dict[str, int]) -> None: ...

    sections = list(build_plan(app).sections.values())
    expected = set()
    for cls in sections:
        if cls.__section__ == "policies":
            expected.add("policies.<name>.<part>.<parameter>")
        else:
            expected.update(_documented_keys(cls.__section__, cls))
    assert {"http", "admin", "shutdown", "log", "broker", "dedup", "policies"} <= {
        cls.__section__ for cls in sections
    }
    text = (DOCS / "settings.md").read_text().split("## Built-in sections", 1)[1]
    table = text.split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = set()
    for row in rows:
        cell = row.split("|")[1]
        documented.update(re.findall(r"`([^`]+)`", cell))
    assert sorted(expected - documented) == []
    assert sorted(documented - expected) == []
