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
