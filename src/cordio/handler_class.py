"""Class-based handlers: one instance per run, its methods handlers, one layer.

::

    @app.handlers(on_error={OrderNotFound: respond(404)})
    class Orders:
        def __init__(self, db: OrderStore) -> None:   # injected once, at start-up
            self.db = db

        async def setup(self) -> None: ...          # optional, after the resources
        async def teardown(self) -> None: ...       # optional, at shutdown

        @app.http.get("/orders/{order_id}")
        async def get_order(self, order_id: int) -> Order:
            return await self.db.get(order_id)

        @app.consume("orders.created")
        async def fulfil(self, event: OrderCreated) -> None: ...

The class is the handler layer of all its methods: ``on_error`` applies to every handler
method and to ``setup`` and ``teardown`` alike, before the app's mappings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from cordio.policy.onerror import ErrorAction, OnError


class HandlerClass:
    """A registered class of handlers.

    Args:
        cls: the class; its ``__init__`` parameters are injected like a resource's.
        on_error: exception class → action for every method of the class.
    """

    def __init__(
        self, cls: type, on_error: Mapping[type[BaseException], ErrorAction] | None
    ) -> None:
        self.cls = cls
        self.on_error = OnError(on_error) if on_error else None

    def __repr__(self) -> str:
        return f"HandlerClass({self.cls.__qualname__})"

    def _guard(self, method: Callable[..., Any]) -> Callable[..., Any]:
        return self.on_error(method) if self.on_error is not None else method

    async def start(self, kwargs: dict[str, Any]) -> Any:
        """Create the instance and run its ``setup``."""
        instance = self.cls(**kwargs)
        setup = getattr(instance, "setup", None)
        if setup is not None:
            result = self._guard(setup)()
            if inspect.isawaitable(result):
                await result
        return instance

    async def stop(self, instance: Any) -> None:
        """Run the instance's ``teardown``."""
        teardown = getattr(instance, "teardown", None)
        if teardown is not None:
            result = self._guard(teardown)()
            if inspect.isawaitable(result):
                await result

    def bound(self, instance: Any, attr: str) -> Callable[..., Any]:
        """The handler method ``attr`` of ``instance``, inside the class's layer."""
        return self._guard(getattr(instance, attr))
