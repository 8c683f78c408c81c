"""Exceptions raised by cordio.

The hierarchy::

    CordioError
    ├── ConfigError                 settings failed to load or validate (lists every problem)
    ├── DependencyError             the dependency graph cannot be built (raised at start-up)
    │   ├── MissingDependencyError  a parameter matches no resource, section or event field
    │   ├── AmbiguousDependencyError  a parameter matches several resources
    │   └── DependencyCycleError    resources depend on each other in a cycle
    ├── StartupError                a resource or service failed to start
    ├── ResourceUnavailableError    a resource is not set up (stopped, or its setup failed)
    └── MissingExtraError(ImportError)  an optional integration is not installed

Every error is raised at start-up where it can be, never at the first request.
"""

from __future__ import annotations

from collections.abc import Sequence


class CordioError(Exception):
    """Base class of every error cordio raises on purpose."""


class ConfigError(CordioError):
    """Settings could not be loaded or validated.

    Args:
        problems: one line per problem, each naming the key and where its value came from;
            a line starting with a space goes on with the problem above it (a file no
            format parses: its TOML error, "  and" its YAML error...) and is not counted.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = sum(1 for p in self.problems if not p.startswith(" "))
        head = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n  ".join([head, *self.problems]))


class DependencyError(CordioError):
    """The dependency graph of handlers, services and resources cannot be built."""


class MissingDependencyError(DependencyError):
    """A parameter of a handler or resource matches nothing that could fill it."""


class AmbiguousDependencyError(DependencyError):
    """A parameter matches several resources by type and none by name."""


class DependencyCycleError(DependencyError):
    """Resources depend on each other in a cycle.

    Args:
        cycle: resource names along the cycle, the first repeated at the end.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle))


class StartupError(CordioError):
    """A resource or service failed to start; what had started was stopped again."""


class ResourceUnavailableError(CordioError):
    """A resource was asked for while it is not set up."""


class MissingExtraError(CordioError, ImportError):
    """An optional integration is used but its extra is not installed.

    Args:
        feature: what needs the extra, e.g. ``"PostgreSQL"``.
        extra: the extra's name, e.g. ``"postgres"`` (install ``cordio[postgres]``).
    """

    def __init__(self, feature: str, extra: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(f"{feature} needs an optional extra: pip install 'cordio[{extra}]'")


def require_extra(module: str, *, feature: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra.

    Only a missing ``module`` itself is translated; an ``ImportError`` raised inside an
    installed module propagates unchanged, so real bugs are not hidden.

    Raises:
        MissingExtraError: ``module`` (or its top-level package) is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] == exc.name.split(".")[0]:
            raise MissingExtraError(feature, extra) from None
        raise
