"""Dependency resolution: from parameters to resources, settings sections and event data.

For every parameter of a handler or resource factory, in this order:

1. an explicit marker (``Annotated[T, Inject("name")]``) names a resource;
2. the transport claims it as event data when it is unmistakably so (a path parameter, a
   pydantic model body);
3. ``Context`` annotation → the event context;
4. the annotation is a type some resource provides (that type or a subclass) → that resource;
   several → the one whose name equals the parameter, else an ambiguity error;
5. the annotation is a :class:`~cordio.settings.Settings` subclass → that section;
6. the parameter's name is a resource's name → that resource;
7. the transport claims it as weaker event data (an HTTP query parameter);
8. a default value → left to the default; otherwise a :class:`MissingDependencyError`.

All of it runs once, at start-up; a handler call only reads the finished plan.
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cordio.context import Context
from cordio.errors import (
    AmbiguousDependencyError,
    DependencyCycleError,
    DependencyError,
    MissingDependencyError,
)
from cordio.resource import ResourceSpec
from cordio.settings import Settings

if TYPE_CHECKING:
    from pydantic import TypeAdapter


class DepKind(enum.StrEnum):
    """Where a parameter's value comes from."""

    RESOURCE = "resource"
    SETTINGS = "settings"
    CONTEXT = "context"
    EVENT = "event"


@dataclass(frozen=True)
class Inject:
    """Marker naming the resource a parameter receives: ``Annotated[Store, Inject("db")]``."""

    name: str


@dataclass(frozen=True)
class Dep:
    """How one parameter is filled.

    Attributes:
        param: the parameter's name.
        kind: where the value comes from (:class:`DepKind`).
        target: the resource or section name (empty for context and event data).
        binding: the transport's event binding (for :attr:`DepKind.EVENT`): a small value
            object of the transport's (an HTTP ``Binding``, a messaging ``Payload``).
    """

    param: str
    kind: DepKind
    target: str = ""
    binding: Any = None


class EventBinder(Protocol):
    """A transport's claim on parameters that carry event data."""

    def bind(self, name: str, annotation: Any, default: Any, *, strong: bool) -> object | None:
        """Return a binding for the parameter, or ``None`` to leave it to injection.

        ``strong`` is the first pass (before resources are considered), the weak pass comes
        after resources and settings.

        A binder may also have ``check(owner, deps)``, called with every parameter's
        :class:`Dep` once a function is planned, raising :class:`DependencyError` for a
        combination it cannot serve (two parameters claiming one payload).
        """


_NONE_TYPES = (None, object, type(None))


def strip_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """Return ``(base type, metadata)`` of an ``Annotated`` annotation, else ``(it, ())``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return base, tuple(meta)
    return annotation, ()


class Resolver:
    """Resolves parameters against registered resources and settings sections.

    Args:
        resources: name → spec of every registered resource (overrides applied).
        sections: section name → class, extended as parameters ask for new sections.
    """

    def __init__(
        self, resources: Mapping[str, ResourceSpec], sections: dict[str, type[Settings]]
    ) -> None:
        self.resources = resources
        self.sections = sections

    def plan(
        self,
        owner: str,
        func: Callable[..., Any],
        hints: Mapping[str, Any],
        *,
        binder: EventBinder | None = None,
        skip: Iterable[str] = (),
    ) -> list[Dep]:
        """Return how each parameter of ``func`` is filled.

        Args:
            owner: how to name ``func`` in errors (``"handler 'create_order'"``).
            hints: evaluated annotations of ``func``.
            binder: the transport's event binder, if ``func`` handles events.
            skip: parameter names filled by the caller (e.g. ``self``).

        Raises:
            MissingDependencyError: a required parameter matches nothing.
            AmbiguousDependencyError: several resources match and none by name.
            DependencyError: a parameter is ``*args``, ``**kwargs`` or positional-only, or
                the binder's ``check`` refuses the parameters.
        """
        deps = []
        skipped = set(skip)
        for param in inspect.signature(func).parameters.values():
            if param.name in skipped:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise DependencyError(
                    f"{owner}: parameter {param.name!r} must be a plain or keyword parameter"
                    " to be injected"
                )
            annotation = hints.get(param.name, inspect.Parameter.empty)
            dep = self._resolve(owner, param, annotation, binder)
            if dep is not None:
                deps.append(dep)
        check = getattr(binder, "check", None)
        if check is not None:
            check(owner, deps)
        return deps

    def _resolve(
        self,
        owner: str,
        param: inspect.Parameter,
        annotation: Any,
        binder: EventBinder | None,
    ) -> Dep | None:
        name = param.name
        default = param.default
        base, meta = strip_annotated(annotation)
        for item in meta:
            if isinstance(item, Inject):
                if item.name not in self.resources:
                    raise MissingDependencyError(
                        f"{owner}: parameter {name!r} asks for resource {item.name!r}, which is"
                        f" not registered; registered: {self._names()}"
                    )
                return Dep(name, DepKind.RESOURCE, item.name)
        if binder is not None:
            binding = binder.bind(name, annotation, default, strong=True)
            if binding is not None:
                return Dep(name, DepKind.EVENT, binding=binding)
        if base is Context:
            return Dep(name, DepKind.CONTEXT)
        if isinstance(base, type) and base not in _NONE_TYPES:
            by_type = [
                spec.name
                for spec in self.resources.values()
                if spec.provides not in _NONE_TYPES and _provides(spec.provides, base)
            ]
            if len(by_type) == 1:
                return Dep(name, DepKind.RESOURCE, by_type[0])
            if len(by_type) > 1:
                if name in by_type:
                    return Dep(name, DepKind.RESOURCE, name)
                raise AmbiguousDependencyError(
                    f"{owner}: parameter {name!r} of type {base.__qualname__} matches"
                    f" resources {sorted(by_type)}; rename the parameter to one of them or use"
                    " Annotated[..., Inject(name)]"
                )
            if issubclass(base, Settings):
                section = base.__section__
                known = self.sections.get(section)
                if known is not None and known is not base:
                    raise AmbiguousDependencyError(
                        f"{owner}: parameter {name!r}: section {section!r} is declared by both"
                        f" {known.__qualname__} and {base.__qualname__}"
                    )
                self.sections[section] = base
                return Dep(name, DepKind.SETTINGS, section)
        if name in self.resources:
            return Dep(name, DepKind.RESOURCE, name)
        if binder is not None:
            binding = binder.bind(name, annotation, default, strong=False)
            if binding is not None:
                return Dep(name, DepKind.EVENT, binding=binding)
        if default is not inspect.Parameter.empty:
            return None
        shown = "no annotation" if annotation is inspect.Parameter.empty else _show(annotation)
        raise MissingDependencyError(
            f"{owner}: parameter {name!r} ({shown}) matches no resource, settings section or"
            f" event field; resources: {self._names()}"
        )

    def _names(self) -> str:
        if not self.resources:
            return "none registered"
        return ", ".join(f"{n} ({_show(s.provides)})" for n, s in sorted(self.resources.items()))


def _provides(provided: Any, wanted: type) -> bool:
    """Whether a resource providing ``provided`` fits a parameter annotated ``wanted``."""
    if provided is wanted:
        return True
    try:
        return isinstance(provided, type) and issubclass(provided, wanted)
    except TypeError:  # a Protocol without @runtime_checkable: only identity matches
        return False


def _show(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def payload_adapter(annotation: Any, *, strong: bool) -> TypeAdapter[Any] | None:
    """How a transport finds the parameter carrying an event's payload (a message body, an
    MDP request): in the strong pass only a pydantic model (not a settings section); in the
    weak pass, after resources and settings had their turn, any type pydantic can validate
    (an unannotated parameter takes anything). Returns the validator, or ``None``: not a
    payload."""
    from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter

    base, _ = strip_annotated(annotation)
    is_model = isinstance(base, type) and issubclass(base, BaseModel)
    if strong and not (is_model and not issubclass(base, Settings)):
        return None
    try:
        return TypeAdapter(Any if annotation is inspect.Parameter.empty else annotation)
    except PydanticSchemaGenerationError:  # neither a resource nor a payload type
        return None


def start_order(roots: Iterable[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Return the resources reachable from ``roots`` in start-up waves.

    Each wave depends only on earlier waves, so a wave's members can start concurrently.

    Args:
        roots: resource names used directly by handlers and services.
        edges: resource name → names it depends on.

    Raises:
        DependencyCycleError: naming the resources along the cycle.
    """
    depth: dict[str, int] = {}
    visiting: list[str] = []

    def visit(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            cycle = visiting[visiting.index(node) :]
            raise DependencyCycleError([*cycle, node])
        visiting.append(node)
        level = 1 + max((visit(dep) for dep in edges.get(node, [])), default=-1)
        visiting.pop()
        depth[node] = level
        return level

    for root in roots:
        visit(root)
    waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node, level in sorted(depth.items()):
        waves[level].append(node)
    return waves
