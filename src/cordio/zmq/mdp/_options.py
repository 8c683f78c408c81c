"""Range checks shared by the option classes of the broker, worker and client."""

from __future__ import annotations

import math


def seconds(owner: object, *names: str, zero: bool = False) -> None:
    """Check that each attribute in ``names`` is a finite number of seconds, positive (or
    ``>= 0`` with ``zero``).

    Raises:
        ValueError: naming the first attribute out of range and its value.
    """
    for name in names:
        value = getattr(owner, name)
        if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
            bound = ">= 0" if zero else "> 0"
            raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}")


def counts(owner: object, *names: str, least: int = 1) -> None:
    """Check that each attribute in ``names`` is at least ``least``.

    Raises:
        ValueError: naming the first attribute out of range and its value.
    """
    for name in names:
        value = getattr(owner, name)
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value!r}")
