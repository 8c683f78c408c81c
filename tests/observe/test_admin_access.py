"""Access to the admin surface: the bearer token (RFC 6750), reads without one, and the
routes transports add under ``/admin/<name>``."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cordio import App
from cordio.config import EnvSource
from cordio.errors import ConfigError
from cordio.testing import TestApp
from cordio.transport import RunContext, TransportBase

TOKEN = "s3cr3t-admin-token-0123456789"


class Gauges(TransportBase):
    """A transport with an operator's view and an operator's action."""

    name = "gauges"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.resets = 0

    def admin_routes(self, run: RunContext) -> list[Route]:
        async def show(request: Request) -> Response:
            return JSONResponse({"resets": self.resets})

        async def reset(request: Request) -> Response:
            self.resets += 1
            return JSONResponse({"resets": self.resets})

        return [Route("/", show), Route("/reset", reset, methods=["POST"])]


def make_app(*, routes: bool = True, **settings: str) -> App:
    environ = {f"SVC__{k}": v for k, v in settings.items()}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    app.transport(Gauges)
    if routes:

        @app.http.get("/")
        async def root() -> str:
            return "ok"

    return app


async def test_without_a_token_reads_are_open_and_changes_refused() -> None:
    app = make_app()
    async with TestApp(app) as client:
        assert (await client.get("/admin/gauges")).json() == {"resets": 0}
        assert (await client.get("/info")).status_code == 200
        refused = await client.post("/admin/gauges/reset")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "admin.token" in refused.json()["detail"]
        assert app.transport(Gauges).resets == 0


async def test_with_a_token_every_admin_route_asks_for_it() -> None:
    app = make_app(ADMIN__TOKEN=TOKEN)
    async with TestApp(app) as client:
        for method, path in (("GET", "/admin/gauges"), ("POST", "/admin/gauges/reset")):
            missing = await client.request(method, path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == 'Bearer realm="admin"'
            assert missing.json()["detail"] == "a bearer token is required"
            for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
                bad = await client.request(method, path, headers={"Authorization": wrong})
                assert bad.status_code == 401, (path, wrong)
                assert "error=" in bad.headers["www-authenticate"] or not wrong.startswith("Bearer")
        assert app.transport(Gauges).resets == 0
        given = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.post("/admin/gauges/reset", headers=given)).json() == {"resets": 1}
        assert (await client.get("/admin/gauges", headers=given)).json() == {"resets": 1}
        assert (await client.get("/info")).status_code == 401
        assert (await client.get("/info", headers=given)).json()["name"] == "svc"
        # probes and the API's own documents carry no credentials
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/")).status_code == 200


async def test_the_scheme_is_case_insensitive_and_the_token_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TestApp(make_app(ADMIN__TOKEN=TOKEN)) as client:
        given = {"Authorization": f"bearer {TOKEN}"}
        assert (await client.get("/admin/gauges", headers=given)).status_code == 200
        await client.get("/admin/gauges", headers={"Authorization": "Bearer wrong-one"})
    assert TOKEN not in caplog.text


async def test_a_short_token_is_a_configuration_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as caught:
        async with TestApp(make_app(ADMIN__TOKEN="short-secret")):
            pass
    assert "admin.token" in str(caught.value)
    assert "16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)


async def test_the_admin_only_server_serves_the_transports_routes() -> None:
    environ = {"SVC__ADMIN__PORT": "0", "SVC__ADMIN__TOKEN": TOKEN}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    app.transport(Gauges)
    async with app.running() as runtime:
        (server,) = runtime.services
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/admin/gauges")).status_code == 401
            given = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.get("/admin/gauges", headers=given)).json() == {"resets": 0}


async def test_admin_disabled_leaves_out_the_transports_routes() -> None:
    async with TestApp(make_app(ADMIN__ENABLED="false")) as client:
        assert (await client.get("/admin/gauges")).status_code == 404


async def test_without_a_token_admin_routes_answer_only_this_host() -> None:
    app = make_app()
    async with TestApp(app) as client:
        assert client.runtime is not None
        asgi = client.runtime.exports["asgi"]
        remote = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi, client=("203.0.113.9", 40000)),
            base_url="http://testserver",
        )
        async with remote:
            refused = await remote.get("/admin/gauges")
            assert refused.status_code == 403
            assert "loopback" in refused.json()["detail"]
            assert (await remote.get("/admin/tasks")).status_code == 403
            assert (await remote.get("/admin/config")).status_code == 403
            assert (await remote.get("/info")).status_code == 200  # open reads stay open
            assert (await remote.get("/metrics")).status_code == 200
            assert (await remote.get("/health/ready")).status_code == 200
        local = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi, client=("::1", 40000)),
            base_url="http://testserver",
        )
        async with local:
            assert (await local.get("/admin/gauges")).status_code == 200


async def test_with_a_token_other_hosts_are_served() -> None:
    app = make_app(ADMIN__TOKEN=TOKEN)
    async with TestApp(app) as client:
        assert client.runtime is not None
        remote = httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=client.runtime.exports["asgi"], client=("203.0.113.9", 40000)
            ),
            base_url="http://testserver",
        )
        async with remote:
            given = {"Authorization": f"Bearer {TOKEN}"}
            assert (await remote.get("/admin/gauges", headers=given)).status_code == 200
