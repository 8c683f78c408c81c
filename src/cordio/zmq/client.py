"""``ZmqClient``: requests to cordio MDP services (and any MDP service) from a handler.

::

    @app.http.get("/price/{item}")
    async def price(item: str, zmq: ZmqClient) -> Price:
        return Price.model_validate(await zmq.request("pricing", {"item": item}))

    total = await zmq.call("calc", "add", 1, 2)      # a @app.zmq.worker class's method

The payload goes out as MessagePack (bytes as they are) and the reply is decoded the same
way (:mod:`cordio.zmq.payload`). One client is shared by every task of the app: it holds a
socket per request in flight (:class:`~cordio.zmq.mdp.MDPClient`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cordio.observe.tracing import outgoing
from cordio.zmq.payload import decode, encode
from cordio.zmq.trace import frame

if TYPE_CHECKING:
    from cordio.zmq.mdp import MDPClient
    from cordio.zmq.settings import ZmqSettings


class ZmqClient:
    """Requests to MDP services through one broker.

    Args:
        client: the MDP client it sends through.
        propagate_trace: send the calling handler's trace context in a last body frame
            (:mod:`cordio.zmq.trace`; default true).
    """

    def __init__(self, client: MDPClient, *, propagate_trace: bool = True) -> None:
        self.mdp = client
        self.propagate_trace = propagate_trace

    @classmethod
    def from_settings(cls, cfg: ZmqSettings) -> ZmqClient:
        """A client of ``zmq.url`` with ``zmq.timeout``, ``zmq.retries`` and ``zmq.version``.

        Raises:
            MissingExtraError: pyzmq is not installed (``cordio[zmq]``).
            CurveKeyError: a key file of ``zmq.curve`` is missing or malformed.
        """
        from cordio.zmq.mdp import ClientOptions, MDPClient, Version

        options = ClientOptions(
            version=Version.V02 if cfg.version == "0.2" else Version.V01,
            timeout=cfg.timeout,
            retries=cfg.retries,
        )
        client = MDPClient(cfg.url, options, curve=cfg.curve.client())
        return cls(client, propagate_trace=cfg.propagate_trace)

    def __repr__(self) -> str:
        return f"<ZmqClient {self.mdp.broker}>"

    async def request(self, service: str, payload: Any, *, timeout: float | None = None) -> Any:
        """Send ``payload`` to ``service``; return the decoded reply.

        Args:
            service: the MDP service name.
            payload: plain data or a pydantic model (MessagePack on the wire), or bytes.
            timeout: seconds each attempt waits (default ``zmq.timeout``).

        Raises:
            RequestTimeout: no reply after every attempt (names service and broker).
            AuthenticationError: the broker refused this client's key (CURVE).
            MDPError: an error reply (``status``: 400 bad body, 404 unknown method, 422
                invalid payload or arguments, 500 the handler failed, 503 unavailable or
                queue full, 504 expired in the broker's queue).
            PayloadError: the reply is neither MessagePack nor JSON.
        """
        headers: dict[str, str] = {}
        attributes = {"rpc.system": "mdp", "rpc.service": service}
        with outgoing(service, "client", attributes, headers):
            frames = [encode(payload)]
            trace = frame(headers) if self.propagate_trace else None
            if trace is not None:
                frames.append(trace)
            body = await self.mdp.request(service, *frames, timeout=timeout)
        value, _ = decode(body)
        return value

    async def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of the worker class serving ``service`` with ``args`` and
        ``kwargs``; raises as :meth:`request`."""
        return await self.request(service, {"method": method, "args": list(args), "kwargs": kwargs})

    def pool_sizes(self) -> dict[str, int]:
        """The MDP client's sockets (:meth:`MDPClient.pool_sizes`), for
        ``cordio_resource_pool``."""
        return self.mdp.pool_sizes()

    def close(self) -> None:
        """Close the sockets; requests in flight fail."""
        self.mdp.close()
