"""The admin surface fuzzed from its own OpenAPI document, like the app's API."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.policy import Bulkhead, CircuitBreaker
from tests.http.fuzz import AppThread, fuzz

TOKEN = "fuzz-admin-token-0123456789abcdef"


@pytest.fixture
def _levels_restored() -> Iterator[None]:
    """POST /admin/loggers/{name} may set any existing logger's level: put them back."""
    loggers = [
        logging.getLogger(),
        *(
            found
            for found in logging.root.manager.loggerDict.values()
            if isinstance(found, logging.Logger)
        ),
    ]
    levels = [(logger, logger.level) for logger in loggers]
    yield
    for logger, level in levels:
        logger.setLevel(level)


@pytest.mark.usefixtures("_levels_restored")
def test_every_admin_operation_answers_only_what_its_document_declares() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__ADMIN__TOKEN": TOKEN})])
    app.policy("pricing", breaker=CircuitBreaker(min_calls=2), bulkhead=Bulkhead(4, 4))

    @app.http.get("/ping")
    async def ping() -> str:
        return "pong"

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with AppThread(app) as thread:
        done = list(
            fuzz(
                thread,
                max_examples=40,
                document_path="/admin/openapi.json",
                methods=False,
                headers=auth,
            )
        )
        assert thread.request("GET", "/admin/tasks").status_code == 401  # no token
        assert thread.request("GET", "/health/live").status_code == 200
    assert sorted(done) == [
        "GET /admin/config",
        "GET /admin/handlers",
        "GET /admin/loggers",
        "GET /admin/policies",
        "GET /admin/tasks",
        "GET /admin/threads",
        "GET /health/live",
        "GET /health/ready",
        "GET /info",
        "GET /metrics",
        "POST /admin/loggers/{name}",
    ]
