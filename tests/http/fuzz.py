"""Property-based fuzzing of an app's HTTP API, driven by its own OpenAPI document.

Schemathesis draws requests for every documented operation with Hypothesis from the
document's schemas — valid ones and ones that break them (negative data) — and checks each
answer: never a 5xx, the status documented for the operation, the documented media type
and a body that validates against the documented schema, invalid input refused with a 4xx.
On top, every path must answer the methods it does not document with 405 and an ``Allow``
header listing the documented ones (plus ``HEAD`` where ``GET`` is served, and
``OPTIONS``), ``OPTIONS`` with 204 and the same ``Allow``, and ``HEAD`` like ``GET`` with
no body.

The app runs under :class:`~cordio.testing.TestApp` on an event loop in a thread of its
own, so the synchronous Hypothesis tests can drive it (:class:`AppThread`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cordio import App
from cordio.testing import TestApp

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


class AppThread:
    """Run ``TestApp(app, **options)`` on an event loop in a thread; send requests from
    synchronous code with :meth:`request`.

    Use as a context manager: the app starts on entry and stops on exit.
    """

    def __init__(self, app: App, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = TestApp(app, **options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> AppThread:
        self.thread.start()
        self._run(self.client.__aenter__())
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._run(self.client.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request to the running app; raises what httpx raises."""
        return self._run(self.client.request(method, url, **options))  # type: ignore[no-any-return]


def _mutations(case: Any) -> Any:
    """What a negative case broke (Schemathesis's mutations), empty for a positive one."""
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    return getattr(data, "mutations", ())


def _lenient(case: Any, temporal: set[str], sent: httpx.Request) -> bool:
    """Whether a negative case breaks only what cannot be told apart on the wire or what
    cordio accepts on purpose: ``format`` keywords; ``type`` in a path, query or header
    parameter (every value there is text: ``tags=0`` is a list of one string, ``n=1.0`` the
    text of an integer); a query or header parameter whose broken value left nothing in the
    request ``sent`` (an empty list is no ``min_price=`` at all); and anything about a
    date/time parameter (``temporal``), which pydantic's lax mode also reads as a Unix
    timestamp (``since=0.0``), as FastAPI does."""
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    mutations = getattr(data, "mutations", ())

    def absent(location: str, name: str) -> bool:
        if location == "query":
            return name not in sent.url.params
        return location == "header" and name.lower() not in sent.headers

    def harmless(m: Any) -> bool:
        location = str(getattr(m.parameter_location, "value", ""))
        in_text = location in ("path", "query", "header")
        keywords = set(m.keywords)
        return (
            keywords <= {"format"}
            or (in_text and keywords <= {"format", "type"})
            or absent(location, m.parameter)
            or m.parameter in temporal
        )

    return bool(mutations) and all(harmless(m) for m in mutations)


def _temporal_parameters(operation: Any) -> set[str]:
    """Names of ``operation``'s parameters whose schema has a date or time format."""
    found = set()
    for parameter in operation.definition.raw.get("parameters", []):
        text = json.dumps(parameter.get("schema", {}))
        if any(f'"format": "{f}"' in text for f in ("date-time", "date", "time", "duration")):
            found.add(parameter["name"])
    return found


def allow(document: dict[str, Any], path: str) -> set[str]:
    """The methods ``Allow`` must list for ``path`` of ``document``."""
    documented = {m.upper() for m in document["paths"][path]}
    return documented | ({"HEAD"} if "GET" in documented else set()) | {"OPTIONS"}


def example_url(path: str) -> str:
    """``path`` with every placeholder set to ``1``."""
    return re.sub(r"{[^}]+}", "1", path)


def fuzz(
    thread: AppThread,
    *,
    max_examples: int = 100,
    document_path: str = "/openapi.json",
    methods: bool = True,
    headers: dict[str, str] | None = None,
) -> Iterator[str]:
    """Fuzz every operation of the app running in ``thread`` with valid and invalid
    requests, then check the methods of every path; yields each operation's label
    (``"GET /orders"``) as it is done. Raises an AssertionError or Schemathesis's failure
    (with the smallest failing request, as a curl command) on the first answer the document
    does not declare. ``document_path`` is where the document is served, ``headers`` go
    with every request (a bearer token), and ``methods`` false leaves out the checks of
    undocumented methods."""
    document = thread.request("GET", document_path).json()
    schema = schemathesis.openapi.from_dict(document)
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzz_operation(thread, operation, GenerationMode.POSITIVE, max_examples, headers)
        try:
            fuzz_operation(thread, operation, GenerationMode.NEGATIVE, max_examples, headers)
        except Unsatisfiable:
            pass  # nothing in its schemas can be broken (e.g. one unconstrained string)
        yield operation.label
    for path in document["paths"] if methods else ():
        url = example_url(path)
        allowed = allow(document, path)
        for method in METHODS:
            if method in allowed:
                continue
            response = thread.request(method, url)
            assert response.status_code == 405, f"{method} {url}: {response.status_code}"
            assert set(response.headers["allow"].split(", ")) == allowed, (method, url)
        if "GET" in allowed:
            get, head = thread.request("GET", url), thread.request("HEAD", url)
            assert head.status_code == get.status_code, f"HEAD {url}: {head.status_code}"
            assert head.content == b"", f"HEAD {url} has a body"
        options = thread.request("OPTIONS", url)
        assert options.status_code == 204, f"OPTIONS {url}: {options.status_code}"
        assert set(options.headers["allow"].split(", ")) == allowed, url
        yield f"methods of {path}"


def fuzz_operation(
    thread: AppThread,
    operation: Any,
    mode: GenerationMode,
    max_examples: int,
    headers: dict[str, str] | None = None,
) -> None:
    """Send ``max_examples`` requests drawn for ``operation`` in ``mode``; check each."""
    temporal = _temporal_parameters(operation)

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs.pop("cookies", None)
        if headers:  # ours, unless the case breaks that header on purpose
            mutated = {str(m.parameter).lower() for m in _mutations(case)}
            ours = {name.lower(): (name, value) for name, value in headers.items()}
            sent = {
                k: v
                for k, v in (kwargs.get("headers") or {}).items()
                if k.lower() not in ours or k.lower() in mutated
            }
            for low, (name, value) in ours.items():
                if low not in mutated:
                    sent[name] = value
            kwargs["headers"] = sent
        if isinstance(kwargs.get("data"), bytes | str):  # requests' spelling of raw content
            kwargs["content"] = kwargs.pop("data")
        response = thread.request(**kwargs)
        checks = CHECKS
        if mode is GenerationMode.NEGATIVE and _lenient(case, temporal, response.request):
            checks = CHECKS[:-1]  # parameters are parsed as pydantic's lax mode does
        case.validate_response(response, checks=checks)

    run()
