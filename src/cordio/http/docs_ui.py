"""Swagger UI at ``/docs`` and ReDoc at ``/redoc``: the app's ``/openapi.json``, browsable,
with no CDN.

The Swagger UI assets (5.x, which reads OpenAPI 3.1) come from the ``swagger-ui-py``
package, installed with ``cordio[docs]``, and are served from the app itself under
``/docs/static/`` — a machine without internet access shows the page too. Without the extra,
``/docs`` answers 404 with a problem naming it. ReDoc's standalone bundle (2.5.4, MIT) ships
inside cordio (``cordio/http/static/redoc``; no maintained Python package carries it) and is
served under ``/redoc/static/``. Both are off with ``http.docs = false``; a handler of the
app's own on ``/docs`` or ``/redoc`` wins over them.
"""

from __future__ import annotations

import html
import importlib.util
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cordio.http.problem import problem

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
</script>
</body>
</html>
"""


REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/static/redoc.standalone.js"></script>
</body>
</html>
"""

REDOC_ASSETS = resources.files("cordio.http") / "static" / "redoc"


def docs_routes(title: str) -> list[BaseRoute]:
    """``GET /docs`` and ``GET /redoc`` (the pages) and their ``static/`` assets for an
    app titled ``title``."""
    redoc_page = REDOC_PAGE.format(title=html.escape(f"{title} - ReDoc"))

    async def redoc(request: Request) -> Response:
        return HTMLResponse(redoc_page)

    routes: list[BaseRoute] = [
        Route("/redoc", redoc, methods=["GET"], include_in_schema=False),
        Mount("/redoc/static", app=StaticFiles(directory=str(REDOC_ASSETS)), name="redoc-static"),
    ]
    return routes + _swagger_routes(title)


def _swagger_routes(title: str) -> list[BaseRoute]:
    if importlib.util.find_spec("swagger_ui") is None:

        async def missing(request: Request) -> Response:
            return problem(
                404,
                "Swagger UI needs the docs extra: pip install 'cordio[docs]'",
                instance=request.url.path,
            )

        return [Route("/docs", missing, methods=["GET"], include_in_schema=False)]
    page = PAGE.format(title=html.escape(f"{title} - Swagger UI"))

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    static = resources.files("swagger_ui") / "static"
    return [
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Mount("/docs/static", app=StaticFiles(directory=str(static)), name="docs-static"),
    ]
