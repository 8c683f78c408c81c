"""cordio: an asyncio microservice chassis.

The public API, imported lazily so ``import cordio`` stays cheap::

    from cordio import App, Settings, Context
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cordio._version import __version__

if TYPE_CHECKING:
    from cordio.app import App
    from cordio.context import Context, current_context
    from cordio.errors import (
        AmbiguousDependencyError,
        ConfigError,
        CordioError,
        DependencyCycleError,
        DependencyError,
        MissingDependencyError,
        MissingExtraError,
        ResourceUnavailableError,
        StartupError,
    )
    from cordio.inject import Inject
    from cordio.lifecycle import Service
    from cordio.observe.tracing import stage
    from cordio.resource import Reconnect
    from cordio.settings import Settings

_EXPORTS = {
    "App": "cordio.app",
    "Context": "cordio.context",
    "current_context": "cordio.context",
    "Settings": "cordio.settings",
    "Reconnect": "cordio.resource",
    "Inject": "cordio.inject",
    "Service": "cordio.lifecycle",
    "CordioError": "cordio.errors",
    "ConfigError": "cordio.errors",
    "DependencyError": "cordio.errors",
    "MissingDependencyError": "cordio.errors",
    "AmbiguousDependencyError": "cordio.errors",
    "DependencyCycleError": "cordio.errors",
    "StartupError": "cordio.errors",
    "ResourceUnavailableError": "cordio.errors",
    "MissingExtraError": "cordio.errors",
    "stage": "cordio.observe.tracing",
}

__all__ = [
    "AmbiguousDependencyError",
    "App",
    "ConfigError",
    "Context",
    "CordioError",
    "DependencyCycleError",
    "DependencyError",
    "Inject",
    "MissingDependencyError",
    "MissingExtraError",
    "Reconnect",
    "ResourceUnavailableError",
    "Service",
    "Settings",
    "StartupError",
    "__version__",
    "current_context",
    "stage",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cordio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
