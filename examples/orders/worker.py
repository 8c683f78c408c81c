"""Fulfilment workers: the ``fulfilment`` consumer alone, one process per replica.

Replicas share ``orders.created`` with each other and with the API process as competing
consumers, so they need a real broker and the same database::

    export ORDERS__BROKER__URL=amqp://guest:guest@127.0.0.1:5672/
    export ORDERS__DB__URL=postgresql://postgres@127.0.0.1:5432/test
    cordio run examples.orders:app                                 # the API
    ORDERS__ADMIN__PORT=8091 cordio run examples.orders.worker:app  # a replica
    ORDERS__ADMIN__PORT=8092 cordio run examples.orders.worker:app  # another

A worker has no HTTP routes; it serves the admin endpoints (``/health/ready`` follows the
broker connection and the database) on ``admin.port``.
"""

from __future__ import annotations

from cordio import App
from examples.orders.service import add_fulfilment, add_storage

app = App("orders", version="1.0.0")
add_storage(app)
add_fulfilment(app)
