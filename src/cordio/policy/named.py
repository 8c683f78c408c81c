"""Named policies: a retry, breaker, timeout and bulkhead applied together and tuned from
configuration under ``policies.<name>``.

::

    pricing = app.policy(
        "pricing",
        breaker=CircuitBreaker(consecutive_failures=5, recovery_time=30),
        retry=Retry(attempts=3),
        timeout=Timeout(2.0),
    )

    @pricing
    async def fetch_price(item: str) -> Price: ...

The parts wrap a call in this order, outermost first: breaker, retry, timeout, bulkhead —
the breaker counts one outcome per retried call, each attempt has its own time limit, and
the bulkhead bounds the calls actually running. An operator overrides any parameter,
e.g. ``ORDERS__POLICIES__PRICING__RETRY__ATTEMPTS=5`` or ``--set
policies.pricing.breaker.recovery_time=60``; invalid values stop start-up naming the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from cordio.policy.breaker import CircuitBreaker
from cordio.policy.bulkhead import Bulkhead
from cordio.policy.retry import Retry
from cordio.policy.timeout import Timeout
from cordio.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

ORDER = ("bulkhead", "timeout", "retry", "breaker")  # innermost first


class PoliciesSettings(Settings, section="policies"):
    """The ``policies`` section: ``policies.<name>.<part>.<parameter>`` for every named
    policy, e.g. ``policies.pricing.retry.attempts = 5``. Parts: ``retry``, ``breaker``,
    ``timeout``, ``bulkhead``.

    An app's own section is built by :func:`policies_settings`: one field per named policy,
    so the configuration tools show, template and check its keys like any other section's.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    def unknown(self) -> list[tuple[tuple[str, ...], str]]:
        """:meth:`unknown_problems` of the names and parts this loaded section kept as
        extras."""
        given: dict[str, Any] = dict(self.model_extra or {})
        for name in type(self).model_fields:
            value = getattr(self, name)
            given[name] = dict(value.model_extra or {}) if isinstance(value, BaseModel) else {}
        return type(self).unknown_problems(given)

    @classmethod
    def unknown_problems(cls, values: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
        """``(key path under policies, message)`` for every policy name and part in
        ``values`` the app does not declare, with the names it does."""
        known = list(cls.model_fields)
        problems: list[tuple[tuple[str, ...], str]] = []
        for name, parts in values.items():
            if name not in cls.model_fields:
                declared = f"policies: {sorted(known)}" if known else "the app declares none"
                problems.append(((name,), f"no policy of this name; {declared}"))
                continue
            model = cls.model_fields[name].annotation
            assert isinstance(model, type)
            assert issubclass(model, BaseModel)
            if not isinstance(parts, Mapping):
                problems.append(((name,), "expected a table of parts"))
                continue
            has = sorted(model.model_fields) or ["none"]
            problems += [
                ((name, kind), f"policy {name!r} has no {kind}; it has {has}")
                for kind in parts
                if kind not in model.model_fields
            ]
        return problems


def policies_settings(policies: Mapping[str, Policy]) -> type[PoliciesSettings]:
    """The ``policies`` section of an app with these named policies: a field per policy,
    whose fields are its parts' settings (:class:`~cordio.policy.retry.RetrySettings`...)
    with the code's values as defaults; a part set in configuration key by key keeps the
    code's values for the keys it leaves out. Names and parts the app does not declare are
    kept as extras, for :meth:`PoliciesSettings.unknown_problems` to report."""
    fields: dict[str, Any] = {}
    for name, policy in policies.items():
        model = policy.settings_model()
        fields[name] = (model, model())
    return create_model(
        "PoliciesSettings", __base__=PoliciesSettings, __doc__=PoliciesSettings.__doc__, **fields
    )


class Policy:
    """A named combination of policies; a decorator for async functions.

    Args:
        name: the key under ``policies`` in configuration.
        retry, breaker, timeout, bulkhead: the parts (each optional). Their own ``name``
            is set to this one's.
    """

    def __init__(
        self,
        name: str,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: Timeout | None = None,
        bulkhead: Bulkhead | None = None,
    ) -> None:
        self.name = name
        given = {"retry": retry, "breaker": breaker, "timeout": timeout, "bulkhead": bulkhead}
        self.parts: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        for part in self.parts.values():
            part.name = name
        self._defaults = {kind: part.settings for kind, part in self.parts.items()}

    def settings_model(self) -> type[BaseModel]:
        """A model of this policy's configuration: one field per part, its parts' settings
        classes with the code's values as defaults; a part given key by key is merged over
        the code's values before it is validated; unknown parts are kept as extras."""
        defaults = dict(self._defaults)

        def merge(cls: type[BaseModel], data: Any) -> Any:
            if not isinstance(data, Mapping):
                return data
            merged = dict(data)
            for kind, default in defaults.items():
                given = merged.get(kind)
                if isinstance(given, Mapping):
                    merged[kind] = {**default.model_dump(), **given}
            return merged

        fields: dict[str, Any] = {
            kind: (type(default), default) for kind, default in defaults.items()
        }
        doc = f"The ``policies.{self.name}`` table: parts {sorted(defaults) or ['none']}."
        return create_model(
            f"{self.name.title().replace('-', '').replace('_', '')}Policy",
            __config__=ConfigDict(frozen=True, extra="allow"),
            __doc__=doc,
            __validators__={"merge_code_values": cast(Any, model_validator(mode="before")(merge))},
            **fields,
        )

    @property
    def retry(self) -> Retry | None:
        return self.parts.get("retry")

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.parts.get("breaker")

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        wrapped = func
        for kind in ORDER:
            part = self.parts.get(kind)
            if part is not None:
                wrapped = part(wrapped)
        return wrapped

    def configure(self, overrides: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
        """Apply ``{part: {parameter: value}}`` over the defaults given in code.

        Returns:
            ``(key path under policies.<name>, message)`` for every problem; nothing is
            applied unless there are none.
        """
        problems: list[tuple[tuple[str, ...], str]] = []
        chosen = {}
        for kind, values in overrides.items():
            part = self.parts.get(kind)
            if part is None:
                known = sorted(self.parts) or ["none"]
                problems.append(((kind,), f"policy {self.name!r} has no {kind}; it has {known}"))
                continue
            if not isinstance(values, Mapping):
                problems.append(((kind,), "expected a table of parameters"))
                continue
            default = self._defaults[kind]
            try:
                chosen[kind] = type(default).model_validate({**default.model_dump(), **values})
            except Exception as exc:
                errors = getattr(exc, "errors", None)
                if errors is None:
                    problems.append(((kind,), str(exc)))
                    continue
                for err in errors(include_input=False, include_url=False):
                    loc = tuple(str(p) for p in err["loc"])
                    problems.append(((kind, *loc), err["msg"]))
        if not problems:
            for kind, part in self.parts.items():
                part.configure(chosen.get(kind, self._defaults[kind]))
        return problems
