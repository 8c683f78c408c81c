"""Prices come from an external pricing service, called through a circuit breaker.

On embedded defaults the example starts a small stub of that service itself (a second HTTP
server inside the app, on ``pricing.stub_port``), so it runs with no other process; point
``pricing.url`` at a real service to use it instead. The stub can be made slow or failing
(``pricing.stub_latency``, ``pricing.stub_failure_rate``) to watch the breaker open.

With ``pricing.via = "zmq"`` prices come from the MDP service ``pricing`` instead
(``examples.orders.pricing_worker``), through the broker at ``zmq.url`` — run in this app
with ``zmq.broker.enabled``, its workers started by ``zmq.workers`` (see docs/zmq.md).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cordio import Settings
from cordio.http import HttpSettings
from cordio.http.client import TracingTransport
from cordio.http.server import HttpServer
from cordio.policy import CircuitBreaker, Policy, Retry, Timeout
from cordio.zmq.client import ZmqClient
from cordio.zmq.mdp import MDPError


class PricingSettings(Settings, section="pricing"):
    """The external pricing service."""

    via: Literal["http", "zmq"] = Field(
        "http", description="http: the pricing service over HTTP; zmq: the MDP service"
    )
    url: str = Field("", description="base URL of the pricing service; empty runs the stub")
    stub_port: int = Field(8082, ge=0, le=65535, description="port of the stub (0: any)")
    stub_latency: float = Field(0.0, ge=0, description="seconds the stub takes per answer")
    stub_failure_rate: float = Field(0.0, ge=0, le=1, description="share of stub answers 503")


class PricingUnavailable(Exception):
    """The pricing service failed: it answered 5xx or something that is not a price."""


class NoPrice(ValueError):
    """The pricing service has no price for this item (it answered 404): the caller's
    input, not a failure of the service, so the breaker does not count it."""


#: Tunable under ``policies.pricing``: e.g. ORDERS__POLICIES__PRICING__BREAKER__RECOVERY_TIME.
pricing_policy = Policy(
    "pricing",
    # connection errors, timeouts and 5xx answers count and are retried by default, and so
    # is PricingUnavailable (named below); NoPrice, a ValueError, is the caller's: never
    breaker=CircuitBreaker(
        consecutive_failures=5, recovery_time=10, failure_types=(PricingUnavailable,)
    ),
    retry=Retry(attempts=2, initial_delay=0.05, max_delay=0.2, on=(PricingUnavailable,)),
    timeout=Timeout(1.0),
)


class PricingStub:
    """The stub pricing service: ``GET /prices/{item}`` → ``{"item", "price"}``."""

    def __init__(self, cfg: PricingSettings, http: HttpSettings) -> None:
        self.cfg = cfg
        self.server: HttpServer | None = None
        if not cfg.url:
            routes = [Route("/prices/{item:path}", self.price)]
            self.server = HttpServer(
                Starlette(routes=routes),
                host="127.0.0.1",
                port=cfg.stub_port,
                settings=http,
                grace=1.0,
                name="pricing-stub",
            )

    async def price(self, request: Request) -> JSONResponse:
        if self.cfg.stub_latency:
            await asyncio.sleep(self.cfg.stub_latency)
        if random.random() < self.cfg.stub_failure_rate:
            return JSONResponse({"error": "pricing is down"}, status_code=503)
        item = request.path_params["item"]
        cents = 100 + sum(item.encode()) % 900
        return JSONResponse({"item": item, "price": str(Decimal(cents) / 100)})

    @property
    def url(self) -> str:
        if self.server is None:
            return self.cfg.url.rstrip("/")
        return f"http://127.0.0.1:{self.server.port}"


async def pricing_stub(cfg: PricingSettings, http: HttpSettings) -> AsyncIterator[PricingStub]:
    """The stub pricing service, running while the app runs (unless ``pricing.url`` is set)."""
    stub = PricingStub(cfg, http)
    if stub.server is None:
        yield stub
        return
    await stub.server.start()
    try:
        yield stub
    finally:
        await stub.server.stop()


class PricingClient:
    """Asks the pricing service for unit prices."""

    def __init__(self, client: httpx.AsyncClient, zmq: ZmqClient | None = None) -> None:
        self.client = client
        self.zmq = zmq

    @pricing_policy
    async def price(self, item: str) -> Decimal:
        """The unit price of ``item``.

        Raises:
            NoPrice: the service knows no price for ``item``.
            PricingUnavailable: the service failed (5xx, or no price in a 200 answer).
            CircuitOpenError: the service failed too often lately; not called.
        """
        if self.zmq is not None:
            return await self._price_over_zmq(item)
        # the item goes into the path percent-encoded (RFC 3986 §2.1), "/" and "." too
        path = "/prices/" + quote(item, safe="").replace(".", "%2E")
        response = await self.client.get(path)
        if response.status_code in (404, 422):
            raise NoPrice(f"no price for item {item!r}")
        if response.status_code != 200:
            raise PricingUnavailable(f"pricing answered {response.status_code}")
        try:
            return Decimal(response.json()["price"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise PricingUnavailable(f"pricing answered no price: {exc!r}") from exc

    async def _price_over_zmq(self, item: str) -> Decimal:
        assert self.zmq is not None
        try:
            answer = await self.zmq.request("pricing", {"item": item})
        except MDPError as exc:
            if exc.status in (404, 422):
                raise NoPrice(f"no price for item {item!r}") from exc
            raise PricingUnavailable(f"pricing failed: {exc.message}") from exc
        try:
            return Decimal(answer["price"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise PricingUnavailable(f"pricing answered no price: {exc!r}") from exc


async def pricing_client(
    pricing_stub: PricingStub, cfg: PricingSettings, zmq: ZmqClient
) -> AsyncIterator[PricingClient]:
    """A client of the pricing service: over HTTP (the stub's address when it runs), or
    over ZeroMQ with ``pricing.via = "zmq"``."""
    transport = TracingTransport()  # the request carries the handler's trace context
    async with httpx.AsyncClient(
        base_url=pricing_stub.url, timeout=5, transport=transport
    ) as client:
        yield PricingClient(client, zmq if cfg.via == "zmq" else None)
