"""Swagger UI at /docs, from packaged assets."""

from __future__ import annotations

import importlib.util

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.testing import TestApp


def api(**environ: str) -> App:
    app = App("shop", config=[EnvSource("shop", environ=environ)])

    @app.http.get("/things")
    async def things() -> list[int]:
        return [1]

    return app


async def test_docs_page_and_its_assets_are_served_by_the_app() -> None:
    async with TestApp(api()) as client:
        page = await client.get("/docs")
        script = await client.get("/docs/static/swagger-ui-bundle.js")
        style = await client.get("/docs/static/swagger-ui.css")
        doc = (await client.get("/openapi.json")).json()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'url: "/openapi.json"' in page.text
    assert "<title>shop - Swagger UI</title>" in page.text
    assert "https://" not in page.text  # nothing from a CDN
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    assert style.status_code == 200
    assert "/docs" not in doc["paths"]


async def test_off_by_setting_and_an_apps_own_docs_handler_wins() -> None:
    async with TestApp(api(SHOP__HTTP__DOCS="false")) as client:
        assert (await client.get("/docs")).status_code == 404
    app = api()

    @app.http.get("/docs")
    async def own_docs() -> str:
        return "ours"

    async with TestApp(app) as client:
        assert (await client.get("/docs")).json() == "ours"


async def test_without_the_extra_docs_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "swagger_ui" else real(name, *a),
    )
    async with TestApp(api()) as client:
        missing = await client.get("/docs")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Swagger UI needs the docs extra: pip install 'cordio[docs]'"


async def test_redoc_page_and_its_packaged_bundle() -> None:
    async with TestApp(api()) as client:
        page = await client.get("/redoc")
        script = await client.get("/redoc/static/redoc.standalone.js")
    assert page.status_code == 200
    assert '<redoc spec-url="/openapi.json"></redoc>' in page.text
    assert "<title>shop - ReDoc</title>" in page.text
    assert script.status_code == 200
    assert len(script.content) > 500_000
    assert "javascript" in script.headers["content-type"]
    async with TestApp(api(SHOP__HTTP__DOCS="false")) as client:
        assert (await client.get("/redoc")).status_code == 404
