"""Admin endpoints: liveness, readiness with each resource's status, and build info.

- ``GET /health/live``: 200 while the process's event loop answers.
- ``GET /health/ready``: 200 when the app has started, is not stopping and every resource's
  check passes; 503 otherwise. Body: ``{"status": ..., "resources": {name: {"status":
  "up"|"down", "detail": str}}}``.
- ``GET /info``: name, version, Python, cordio version, git sha when known.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cordio._version import __version__

if TYPE_CHECKING:
    from cordio.lifecycle import Runtime

JSON = "application/json"


def git_sha(start: Path | None = None) -> str | None:
    """Return the commit of the git checkout holding ``start`` (default: the current
    directory), from ``GIT_SHA`` if set, else by reading ``.git`` directly; ``None`` if
    unknown. Never raises."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    here = (start or Path.cwd()).resolve()
    try:
        for folder in (here, *here.parents):
            git = folder / ".git"
            if not git.is_dir():
                continue
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head or None
            ref = head[5:]
            loose = git / ref
            if loose.is_file():
                return loose.read_text().strip() or None
            packed = git / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
            return None
    except OSError:
        return None
    return None


def admin_routes(runtime: Callable[[], Runtime | None]) -> list[Route]:
    """Build the admin routes for the app whose runtime ``runtime()`` returns."""
    info_cache: dict[str, Any] = {}

    async def live(request: Request) -> Response:
        return Response(b'{"status":"alive"}', media_type=JSON)

    async def ready(request: Request) -> Response:
        current = runtime()
        if current is None:
            return Response(b'{"status":"stopped","resources":{}}', 503, media_type=JSON)
        ok, body = await current.health()
        return Response(to_json(body), 200 if ok else 503, media_type=JSON)

    async def info(request: Request) -> Response:
        if not info_cache:
            current = runtime()
            app = current.app if current is not None else None
            info_cache.update(
                name=app.name if app else None,
                version=app.version if app else None,
                python=platform.python_version(),
                cordio=__version__,
                git_sha=git_sha(),
            )
        return Response(to_json(info_cache), media_type=JSON)

    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
    ]
