"""Settings sections: names, injection, secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from cordio import App, Settings
from cordio.config import EnvSource
from cordio.testing import TestApp


def test_section_names() -> None:
    class PaymentGatewaySettings(Settings):
        url: str = "x"

    class Explicit(Settings, section="pay"):
        url: str = "x"

    assert PaymentGatewaySettings.__section__ == "payment_gateway"
    assert Explicit.__section__ == "pay"
    with pytest.raises(ValueError, match=r"section name 'Not-OK' of .*Bad must be lower case"):

        class Bad(Settings, section="Not-OK"):
            pass


def test_sections_are_frozen_and_secrets_hidden() -> None:
    class Db(Settings, section="db"):
        password: SecretStr = SecretStr("hunter2")

    db = Db()
    assert repr(db) == "Db(password=SecretStr('**********'))"
    assert str(db) == "password=SecretStr('**********')"
    with pytest.raises(ValidationError, match="Instance is frozen") as info:
        db.password = SecretStr("x")  # type: ignore[misc]
    assert info.value.errors()[0]["type"] == "frozen_instance"
    assert db.password.get_secret_value() == "hunter2"


async def test_section_injected_into_handler_and_resource() -> None:
    class Greeting(Settings, section="greeting"):
        word: str = "hello"
        times: int = 1

    app = App("svc", config=[EnvSource("svc", environ={"SVC__GREETING__TIMES": "3"})])

    @app.resource
    def phrase(cfg: Greeting) -> str:
        return " ".join([cfg.word] * cfg.times)

    @app.http.get("/")
    async def root(phrase: str, cfg: Greeting) -> list[object]:
        return [phrase, cfg.times]

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == ["hello hello hello", 3]
