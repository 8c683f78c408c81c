"""HTTP transport (Starlette + uvicorn): handlers, parameters, problem responses."""

from cordio.http.params import Body, Header, Path, Query
from cordio.http.problem import ProblemError, problem
from cordio.http.response import Response
from cordio.http.settings import AdminSettings, HttpSettings

__all__ = [
    "AdminSettings",
    "Body",
    "Header",
    "HttpSettings",
    "Path",
    "ProblemError",
    "Query",
    "Response",
    "problem",
]
