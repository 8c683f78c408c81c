"""No secret survives in ``/admin/config``, ``cordio config show``, error replies and span
attributes, whatever it is embedded in and wherever it was set (file, environment,
command line)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import given
from pydantic import SecretStr

from cordio import App, Settings
from cordio.cli import main
from cordio.config import EnvSource
from cordio.messaging.message import Message
from cordio.messaging.rpc import error_reply
from cordio.observe.masking import MASK, Masker, use_masker
from cordio.outcome import Outcome
from cordio.policy import OnError, respond
from cordio.testing import TestApp
from tests.observe.secret_strategies import (
    EMBEDDINGS,
    FAST,
    around,
    assert_hidden,
    embeddings,
    secrets,
)

TOKEN = "masking-admin-token-0123456789"
GIVEN = {"Authorization": f"Bearer {TOKEN}"}


#: The environment source reads a value starting with ``[`` or ``{`` as JSON.
env_secrets = secrets.filter(lambda s: s[:1] not in "[{")


class DbSettings(Settings, section="db"):
    password: SecretStr
    url: str = "sqlite://"
    note: str = ""


class Refused(Exception):
    pass


def make_app(environ: dict[str, str]) -> App:
    app = App("svc", settings=[DbSettings], config=[EnvSource("svc", environ=environ)])

    @app.http.get("/connect")
    @OnError({Refused: respond(409, detail=True)})
    async def connect(db: DbSettings) -> dict[str, str]:
        raise Refused(f"the server refused {db.url} with {db.password.get_secret_value()}")

    @app.http.get("/problem")
    async def fails(db: DbSettings) -> None:
        from cordio.http.problem import ProblemError

        raise ProblemError(400, f"bad note: {db.note}")

    return app


@FAST
@given(secret=env_secrets, how=embeddings, before=around)
async def test_admin_config_error_replies_and_logs_hide_the_secret(
    secret: str, how: str, before: str
) -> None:
    environ = {
        "SVC__DB__PASSWORD": secret,
        "SVC__DB__URL": f"postgresql://app:{quote(secret, safe='')}@db:5432/orders",
        "SVC__DB__NOTE": "note: " + before + EMBEDDINGS[how](secret),
        "SVC__ADMIN__TOKEN": TOKEN,
    }
    async with TestApp(make_app(environ)) as client:
        shown = await client.get("/admin/config", headers=GIVEN)
        assert shown.status_code == 200
        assert_hidden(secret, shown.text)
        rows = shown.json()
        assert rows["db.password"] == {
            "value": MASK,
            "source": "env:SVC__DB__PASSWORD",
            "layer": "env",
        }
        assert rows["db.url"]["value"] == f"postgresql://app:{MASK}@db:5432/orders"
        for path in ("/connect", "/problem"):
            answer = await client.get(path)
            assert answer.status_code in (409, 400)
            assert answer.json()["detail"]
            assert_hidden(secret, answer.text)


async def test_admin_config_sections_and_the_token() -> None:
    environ = {"SVC__DB__PASSWORD": "pw-0123456", "SVC__ADMIN__TOKEN": TOKEN}
    async with TestApp(make_app(environ)) as client:
        assert (await client.get("/admin/config")).status_code == 401
        db = (await client.get("/admin/config?section=db", headers=GIVEN)).json()
        assert sorted(db) == ["db.note", "db.password", "db.url"]
        assert db["db.url"] == {"value": "sqlite://", "source": "default", "layer": "default"}
        missing = await client.get("/admin/config?section=nope", headers=GIVEN)
        assert missing.status_code == 404
        assert "sections" in missing.json()["detail"]


SECRET_APP = """
from pydantic import SecretStr
from cordio import App, Settings


class DbSettings(Settings, section="db"):
    password: SecretStr
    url: str = "sqlite://"
    note: str = ""


app = App("shown", settings=[DbSettings])


@app.http.get("/x")
async def x(db: DbSettings) -> None:
    return None
"""


@pytest.mark.parametrize("fmt", ["json", "table", "yaml"])
def test_config_show_hides_secrets_given_on_the_command_line_and_in_the_environment(
    tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / "shown_app.py"
    target.write_text(SECRET_APP)
    on_line = "cl1-s3cret/@:x"
    in_env = "env-s3cret?&="
    result = CliRunner().invoke(
        main,
        [
            "config",
            "show",
            f"{target}:app",
            "--format",
            fmt,
            "--set",
            f"db.password={on_line}",
            "--db.note",
            f"{on_line} and {in_env}",
        ],
        env={"SHOWN__DB__URL": f"postgresql://app:{quote(in_env, safe='')}@db/x"},
    )
    assert result.exit_code == 0, result.output
    assert_hidden(on_line, result.stdout)
    assert_hidden(in_env, result.stdout)
    if fmt == "json":
        shown = json.loads(result.stdout)
        assert shown["db.password"] == {
            "value": MASK,
            "source": "cli:--set db.password",
            "layer": "cli",
        }
        assert shown["db.note"]["value"] == f"{MASK} and {MASK}"
        assert shown["db.url"]["source"] == "env:SHOWN__DB__URL"


@FAST
@given(secret=secrets, how=embeddings, before=around)
def test_messaging_and_zeromq_error_replies_hide_the_secret(
    secret: str, how: str, before: str
) -> None:
    from cordio.policy.onerror import ErrorResponse
    from cordio.zmq.mdp import MDPError
    from cordio.zmq.transport import _reply

    text = before + EMBEDDINGS[how](secret)
    use_masker(Masker(secrets=[secret]))
    try:
        reply = error_reply(Message(body=b"{}"), 409, "Conflict", text)
        assert_hidden(secret, reply.body.decode())
        error = Refused(text)
        answer = ErrorResponse(error, respond(409, detail=True))
        outcome = Outcome(error=error, response=answer, recorded=True)
        with pytest.raises(MDPError) as caught:
            _reply("svc", "handler", outcome, "json")
        assert_hidden(secret, str(caught.value))
    finally:
        use_masker(None)


def test_span_attributes_events_and_status_are_masked() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from cordio.observe.span_masking import masked_exporter

    secret = "span-s3cret/@:"
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(masked_exporter(memory, Masker(secrets=[secret])))
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(f"GET /{secret}") as span:
        span.set_attribute("url.full", f"https://u:{quote(secret, safe='')}@h/x")
        span.set_attribute("http.request.header.authorization", ("Bearer abc",))
        span.set_attribute("db.statement", f"select '{secret}'")
        span.set_attribute("count", 3)
        span.record_exception(ValueError(f"bad {secret}"))
        span.set_status(Status(StatusCode.ERROR, f"failed with {secret}"))
    provider.shutdown()
    (exported,) = memory.get_finished_spans()
    text = json.dumps(
        {
            "name": exported.name,
            "attributes": dict(exported.attributes or {}),
            "events": [dict(e.attributes or {}) for e in exported.events],
            "status": exported.status.description,
        }
    )
    assert_hidden(secret, text)
    assert exported.attributes is not None
    assert exported.attributes["count"] == 3
    assert exported.attributes["http.request.header.authorization"] == MASK
    assert exported.status.description == f"failed with {MASK}"
