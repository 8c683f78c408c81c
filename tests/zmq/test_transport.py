"""The ZeroMQ transport in an app: service handlers and worker classes behind the in-app
broker, called by cordio's client and by a plain RFC 7 client."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pytest
from pydantic import BaseModel, Field

from cordio import App
from cordio.config import EnvSource
from cordio.policy import OnError, respond
from cordio.testing import TestApp
from cordio.zmq.client import ZmqClient
from cordio.zmq.mdp import MDPError
from cordio.zmq.settings import CurveConfig, ZmqSettings
from tests.conftest import free_port
from tests.eventually import eventually, eventually_sync
from tests.zmq.rfc_peers import Client01


class Quote(BaseModel):
    item: str = Field(min_length=1, max_length=50)
    quantity: int = Field(ge=1)


class Price(BaseModel):
    item: str
    total: float


class Sold(Exception):
    pass


def shop(url: str | None = None) -> App:
    url = url or f"inproc://cordio-test-{uuid.uuid4().hex}"
    environ = {"SHOP__ZMQ__URL": url, "SHOP__ZMQ__BROKER__ENABLED": "true"}
    environ["SHOP__ZMQ__BROKER__BIND"] = json.dumps([url])
    app = App("shop", config=[EnvSource("shop", environ=environ)])

    @app.resource
    async def prices() -> dict[str, float]:
        return {"tea": 2.5, "cake": 4.0}

    @app.zmq.service("pricing", concurrency=2)
    @OnError({Sold: respond(409, detail=True)})
    async def price(quote: Quote, prices: dict[str, float]) -> Price:
        if quote.item == "gone":
            raise Sold("sold out")
        if quote.item == "boom":
            raise RuntimeError("the price table is broken")
        return Price(item=quote.item, total=prices[quote.item] * quote.quantity)

    @app.zmq.worker("calc")
    class Calc:
        def __init__(self, prices: dict[str, float]) -> None:
            self.prices = prices

        async def add(self, a: int, b: int = 0) -> int:
            return a + b

        def cost(self, item: str) -> float:  # a plain method runs in a thread
            return self.prices[item]

        async def divide(self, a: float, b: float) -> float:
            return a / b

    @app.http.post("/quote")
    async def quote(body: Quote, zmq: ZmqClient) -> Price:  # HTTP in front of the service
        return Price.model_validate(await zmq.request("pricing", body))

    return app


async def test_service_handlers_are_called_with_their_payload_and_resources() -> None:
    app = shop()
    async with TestApp(app) as http:
        response = await http.post("/quote", json={"item": "tea", "quantity": 2})
        assert response.json() == {"item": "tea", "total": 5.0}
        client = app.get(ZmqClient)
        assert await client.call("calc", "add", 1, 2) == 3
        assert await client.call("calc", "add", a=5) == 5
        assert await client.call("calc", "cost", "cake") == 4.0


@pytest.mark.parametrize(
    ("service", "payload", "status", "message"),
    [
        ("pricing", {"item": "", "quantity": 2}, 422, "item: String should have at least 1"),
        ("pricing", {"item": "tea"}, 422, "quantity: Field required"),
        ("pricing", {"item": "gone", "quantity": 1}, 409, "sold out"),
        ("pricing", {"item": "boom", "quantity": 1}, 500, "internal error"),
        ("calc", {"method": "mul", "args": [1, 2]}, 404, "no method 'mul'; methods: add, cost"),
        ("calc", {"method": "add", "args": [1, 2, 3]}, 422, "3 positional arguments"),
        ("calc", {"method": "add", "args": ["x"]}, 422, "a: Input should be a valid integer"),
        ("calc", {"method": "add", "kwargs": {"c": 1}}, 422, "unknown argument 'c'"),
        ("calc", {"method": "add"}, 422, "missing argument 'a'"),
        ("calc", {"args": [1]}, 400, '{"method": name'),
        ("calc", {"method": "divide", "args": [1, 0]}, 500, "internal error"),
    ],
)
async def test_bad_requests_get_error_replies_and_the_worker_keeps_serving(
    service: str, payload: Any, status: int, message: str
) -> None:
    app = shop()
    async with TestApp(app):
        client = app.get(ZmqClient)
        with pytest.raises(MDPError) as caught:
            await client.request(service, payload)
        assert caught.value.status == status
        assert message in caught.value.message
        assert await client.call("calc", "add", 2, 2) == 4  # still serving


async def test_a_plain_rfc7_client_gets_json_back_for_json() -> None:
    url = f"inproc://cordio-test-{uuid.uuid4().hex}"
    app = shop(url)
    async with TestApp(app):
        client = Client01(url)
        try:
            body = await client.request(b"pricing", b'{"item": "cake", "quantity": 1}')
            assert json.loads(body[0]) == {"item": "cake", "total": 4.0}
            body = await client.request(b"pricing", msgpack.packb({"item": "tea", "quantity": 1}))
            assert msgpack.unpackb(body[0]) == {"item": "tea", "total": 2.5}
            body = await client.request(b"pricing", b"\xc1 not a payload")
            assert body[0] == b"mdp.error"
            assert body[1] == b"400"
        finally:
            client.close()


def test_registration_refuses_what_cannot_work() -> None:
    app = App("svc")
    with pytest.raises(ValueError, match=r"mmi\. namespace"):
        app.zmq.service("mmi.service")
    with pytest.raises(ValueError, match="must not be empty"):
        app.zmq.service("")

    @app.zmq.service("echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    with pytest.raises(ValueError, match="'echo' is already served"):

        @app.zmq.service("echo")
        async def again(payload: dict[str, Any]) -> dict[str, Any]:
            return payload

    with pytest.raises(ValueError, match="has no public methods"):

        @app.zmq.worker("empty")
        class Empty:
            def _private(self) -> None: ...


async def test_a_tcp_endpoint_without_a_port_takes_one_of_the_range(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "broker.endpoints"
    environ = {
        "SVC__ZMQ__BROKER__ENABLED": "true",
        "SVC__ZMQ__BROKER__BIND": '["tcp://127.0.0.1"]',
        "SVC__ZMQ__BROKER__PORT_RANGE": f"[{port}, {port}]",
        "SVC__ZMQ__BROKER__STATE_FILE": str(state),
        "SVC__ZMQ__URL": f"tcp://127.0.0.1:{port}",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.zmq.service("echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    app.dependency(ZmqClient)  # started with the app, for the test
    async with TestApp(app) as http:
        assert state.read_text() == f"tcp://127.0.0.1:{port}\n"
        info = (await http.get("/info")).json()
        assert info["transports"] == {"zmq": {"broker": {"endpoints": [f"tcp://127.0.0.1:{port}"]}}}
        assert await app.get(ZmqClient).request("echo", {"n": 1}) == {"n": 1}


def test_cordio_zmq_broker_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "endpoints"
    cordio = Path(sys.executable).with_name("cordio")
    proc = subprocess.Popen(
        [
            str(cordio),
            "zmq",
            "broker",
            "--bind",
            f"tcp://127.0.0.1:{port}",
            "--state-file",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually_sync(
            lambda: state.exists() and state.read_text(), timeout=20, what="the broker bound"
        )
        assert state.read_text() == f"tcp://127.0.0.1:{port}\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert f"MDP broker serving on tcp://127.0.0.1:{port}" in out.decode()


async def test_cordio_zmq_broker_with_curve_admits_only_authorized_keys(tmp_path: Path) -> None:
    from cordio.zmq.curve import CurveClientConfig
    from cordio.zmq.mdp import AuthenticationError, ClientOptions, MDPClient

    keys, admitted = tmp_path / "keys", tmp_path / "admitted"
    assert certs(keys, "--server", "--client", "good", "--client", "bad")[0] == 0
    admitted.mkdir()
    (admitted / "good.key").write_bytes((keys / "good.key").read_bytes())
    port = free_port()
    state = tmp_path / "endpoints"
    cordio = Path(sys.executable).with_name("cordio")
    command = [str(cordio), "zmq", "broker", "--bind", f"tcp://127.0.0.1:{port}"]
    command += ["--state-file", str(state), "--curve-secret", str(keys / "server.key_secret")]
    command += ["--authorized-keys", str(admitted)]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    endpoint = f"tcp://127.0.0.1:{port}"
    options = ClientOptions(timeout=2, retries=0)
    try:
        await eventually(state.exists, timeout=20, what="the broker bound")
        for name, admitted_ in (("good", True), ("bad", False)):
            curve = CurveClientConfig(keys / f"{name}.key_secret", keys / "server.key")
            async with MDPClient(endpoint, options, curve=curve) as client:
                if admitted_:
                    assert await client.service_available("echo") is False  # mmi answered
                else:
                    with pytest.raises(AuthenticationError):
                        await client.service_available("echo")
        async with MDPClient(endpoint, options) as plain:  # no CURVE at all: no answer
            with pytest.raises(MDPError):
                await plain.service_available("echo", timeout=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()


def test_cordio_zmq_broker_names_a_bad_key_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cordio.cli import main

    missing = tmp_path / "nope.key_secret"
    result = CliRunner().invoke(
        main,
        ["zmq", "broker", "--curve-secret", str(missing), "--authorized-keys", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert str(missing) in result.output
    alone = CliRunner().invoke(main, ["zmq", "broker", "--curve-secret", str(missing)])
    assert alone.exit_code == 2
    assert "authorized_keys_dir" in alone.output


def certs(directory: Path, *args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from cordio.cli import main

    result = CliRunner().invoke(main, ["zmq", "certs", "--dir", str(directory), *args])
    return result.exit_code, result.output


async def test_curve_from_settings_admits_authorized_keys_and_refuses_others(
    tmp_path: Path,
) -> None:
    from cordio.zmq.mdp import AuthenticationError

    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    code, out = certs(keys, "--server", "--client", "app", "--client", "stranger")
    assert code == 0, out
    assert (keys / "server.key_secret").stat().st_mode & 0o777 == 0o600
    assert certs(keys, "--server")[0] == 1  # no overwrite without --force
    authorized.mkdir()
    (authorized / "app.key").write_bytes((keys / "app.key").read_bytes())
    port = free_port()
    curve = {
        "SVC__ZMQ__CURVE__SERVER_SECRET_FILE": str(keys / "server.key_secret"),
        "SVC__ZMQ__CURVE__AUTHORIZED_KEYS_DIR": str(authorized),
        "SVC__ZMQ__CURVE__SECRET_FILE": str(keys / "app.key_secret"),
        "SVC__ZMQ__CURVE__SERVER_PUBLIC_FILE": str(keys / "server.key"),
    }
    environ = {
        "SVC__ZMQ__BROKER__ENABLED": "true",
        "SVC__ZMQ__BROKER__BIND": f'["tcp://127.0.0.1:{port}"]',
        "SVC__ZMQ__URL": f"tcp://127.0.0.1:{port}",
        **curve,
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.zmq.service("echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    app.dependency(ZmqClient)
    async with TestApp(app):
        assert await app.get(ZmqClient).request("echo", {"n": 1}) == {"n": 1}
        stranger = ZmqClient.from_settings(
            app.config.get(ZmqSettings).model_copy(
                update={
                    "timeout": 1.0,
                    "curve": CurveConfig(
                        secret_file=str(keys / "stranger.key_secret"),
                        server_public_file=str(keys / "server.key"),
                    ),
                }
            )
        )
        try:
            with pytest.raises(AuthenticationError):
                await stranger.request("echo", {"n": 2})
        finally:
            stranger.close()


def test_half_a_key_pair_in_settings_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="secret_file and server_public_file go together"):
        CurveConfig(secret_file="a.key_secret")
