"""CORS from ``http.cors`` (Starlette's CORSMiddleware): off by default."""

from __future__ import annotations

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.errors import ConfigError
from cordio.testing import TestApp

PREFLIGHT = {
    "origin": "https://app.example",
    "access-control-request-method": "POST",
    "access-control-request-headers": "x-token",
}


def cors_app(**environ: str) -> App:
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.post("/things")
    async def create() -> int:
        return 1

    @app.http.get("/fails")
    async def fails() -> None:
        raise RuntimeError("boom")

    return app


async def test_off_by_default_preflight_is_not_answered_for_any_origin() -> None:
    async with TestApp(cors_app()) as client:
        preflight = await client.options("/things", headers=PREFLIGHT)
        simple = await client.post("/things", headers={"origin": "https://app.example"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_listed_origins_get_preflight_and_response_headers_others_do_not() -> None:
    app = cors_app(
        SVC__HTTP__CORS__ALLOW_ORIGINS="https://app.example, https://admin.example",
        SVC__HTTP__CORS__ALLOW_HEADERS='["x-token"]',
        SVC__HTTP__CORS__EXPOSE_HEADERS="x-trace",
        SVC__HTTP__CORS__ALLOW_CREDENTIALS="true",
        SVC__HTTP__CORS__MAX_AGE="120",
    )
    async with TestApp(app) as client:
        preflight = await client.options("/things", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "x-token" in preflight.headers["access-control-allow-headers"]
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert preflight.headers["access-control-max-age"] == "120"
        simple = await client.post("/things", headers={"origin": "https://admin.example"})
        assert simple.json() == 1
        assert simple.headers["access-control-allow-origin"] == "https://admin.example"
        assert simple.headers["access-control-expose-headers"] == "x-trace"
        # an error answer carries the headers too, so the browser shows it to the script
        failed = await client.get("/fails", headers={"origin": "https://app.example"})
        assert failed.status_code == 500
        assert failed.headers["access-control-allow-origin"] == "https://app.example"
        evil = await client.options(
            "/things", headers={**PREFLIGHT, "origin": "https://evil.example"}
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers


async def test_allow_methods_from_settings_limit_the_preflight() -> None:
    app = cors_app(
        SVC__HTTP__CORS__ALLOW_ORIGINS="https://app.example",
        SVC__HTTP__CORS__ALLOW_METHODS="GET, HEAD",
        SVC__HTTP__CORS__ALLOW_HEADERS="x-token",
    )
    async with TestApp(app) as client:
        refused = await client.options("/things", headers=PREFLIGHT)  # asks for POST
        allowed = await client.options(
            "/things", headers={**PREFLIGHT, "access-control-request-method": "GET"}
        )
    assert refused.status_code == 400
    assert refused.text == "Disallowed CORS method"
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-methods"] == "GET, HEAD"


async def test_credentials_for_every_origin_is_refused_at_start() -> None:
    app = cors_app(SVC__HTTP__CORS__ALLOW_ORIGINS="*", SVC__HTTP__CORS__ALLOW_CREDENTIALS="1")
    with pytest.raises(ConfigError, match=r"http\.cors.*allow_credentials with allow_origins"):
        async with TestApp(app):
            pass
