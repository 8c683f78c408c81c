"""``GET /admin/config``: the effective settings of the running app, masked.

Served by the admin surface (:mod:`cordio.observe.admin`) behind the admin token. The body
is what ``cordio config show --format json`` prints: ``{key: {"value", "source",
"layer"}}`` for every setting of every section the app loads, a model field key by key
(``http.cors.max_age``); the source names the file and line, the environment variable or
the command-line option the value came from (``default`` when none set it).

Values are masked by the run's masker (:mod:`cordio.observe.masking`): secret fields and
keys as ``**********``, and every secret value of the settings wherever it appears in
another value (a URL, a JSON text). ``?section=db`` shows one section (404 for a section
the app does not load).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cordio.config.commands import config_rows

if TYPE_CHECKING:
    from cordio.transport import RunContext

JSON = "application/json"


def routes(run: RunContext) -> list[Route]:
    """``/config``."""

    async def config(request: Request) -> Response:
        """The effective settings with their sources, masked.
        ---
        summary: The effective settings with their sources, masked
        parameters:
          - name: section
            in: query
            required: false
            schema: {type: string}
        responses:
          "200":
            description: "{key: {value, source, layer}}"
            content:
              application/json:
                schema: {type: object}
          "404":
            description: the app loads no such section
        """
        from cordio.http.problem import problem

        section = request.query_params.get("section") or None
        if section is not None and section not in run.config.sections:
            return problem(404, f"no section {section!r}; sections: {sorted(run.config.sections)}")
        rows = config_rows(run.config, run.masker, section)
        return Response(to_json(rows, fallback=str), media_type=JSON)

    return [Route("/config", config, methods=["GET"])]
