"""The orders example service: ``cordio run examples.orders:app``."""

from examples.orders.service import app

__all__ = ["app"]
