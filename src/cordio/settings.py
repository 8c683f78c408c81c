"""Settings sections: typed, validated slices of the app's configuration.

A section is a pydantic model with a name::

    class DbSettings(Settings, section="db"):
        url: str = "sqlite:///var/orders.db"
        pool_size: int = 10

Its values come from the model's defaults, then config files, environment variables
(``<APP>__DB__URL``), a ``.env`` file and command-line options (``--db.url``), lowest
priority first (see :mod:`cordio.config`). A section is
injected into any handler or resource that declares a parameter of its type. Sections are
frozen once loaded: configuration is read once at start-up and never changes under a
running service.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _default_section_name(cls_name: str) -> str:
    base = cls_name.removesuffix("Settings").removesuffix("Config") or cls_name
    return _CAMEL.sub("_", base).lower()


class Settings(BaseModel):
    """Base class of a settings section.

    Subclass with ``section="name"`` (the key in files and environment variables); without
    it the name is the class name without a ``Settings`` suffix, in snake case
    (``DbSettings`` → ``db``). Unknown keys are reported by the loader, not silently kept.

    Fields of type :class:`pydantic.SecretStr` are never printed or logged in clear.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    __section__: ClassVar[str] = ""

    def __init_subclass__(cls, section: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = section or _default_section_name(cls.__name__)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(
                f"settings section name {name!r} of {cls.__qualname__} must be lower case "
                "letters, digits and underscores, starting with a letter"
            )
        cls.__section__ = name


def section_name(cls: type[Settings]) -> str:
    """Return the section name of a :class:`Settings` subclass (``"db"``)."""
    return cls.__section__


class ShutdownSettings(Settings, section="shutdown"):
    """The ``shutdown`` section, read by the lifecycle and by every transport that drains.

    Attributes:
        grace: seconds in-flight handler calls get to finish before they are cancelled
            (default 30).
        delay: seconds between readiness turning false and the listeners closing, so load
            balancers see the 503 and stop routing first (default 0).
    """

    grace: float = Field(30.0, ge=0)
    delay: float = Field(0.0, ge=0)
