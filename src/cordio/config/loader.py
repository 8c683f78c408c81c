"""Merge configuration layers and validate them into settings sections."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, TypeVar

from pydantic import BaseModel, ValidationError, create_model

from cordio.config.files import FileSource
from cordio.config.sources import (
    CliSource,
    ConfigPolicy,
    DotEnvSource,
    EnvSource,
    Layer,
    Source,
    env_prefix,
)
from cordio.errors import ConfigError
from cordio.observe.masking import Masker
from cordio.settings import Settings

log = logging.getLogger("cordio.config")

S = TypeVar("S", bound=Settings)


@dataclass
class Config:
    """The effective configuration of an app: validated sections and where values came from.

    Attributes:
        sections: section name → validated, frozen :class:`Settings` instance.
        origins: dotted key (``"db.url"``) → source of the value (``default``,
            ``file:PATH``, ``env:NAME``).
        layers: dotted key → the layer its value came from: ``file`` (a discovered
            file), ``overlay`` (a profile file or one named with ``--config``), ``env``,
            ``.env`` or ``cli``; a key absent here has its default.
        missing: dotted keys of required values no source sets; empty unless loaded with
            ``allow_missing=True`` (``config show``), whose sections then hold ``None`` there.
    """

    sections: dict[str, Settings] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def get(self, cls: type[S]) -> S:
        """Return the loaded section of type ``cls``.

        Raises:
            KeyError: the section was not loaded (it is not used by the app).
        """
        section = self.sections[cls.__section__]
        assert isinstance(section, cls)
        return section

    def explain(self, key: str) -> str:
        """Return where the value of a dotted key (``"db.url"``) came from.

        Returns ``"default"`` for a value nobody set.

        Raises:
            KeyError: no loaded section has this key.
        """
        if key in self.origins:
            return self.origins[key]
        section, _, name = key.partition(".")
        model = self.sections.get(section)
        if model is None or name.split(".")[0] not in type(model).model_fields:
            raise KeyError(key)
        return "default"

    def items(self, masker: Masker | None = None) -> list[tuple[str, Any, str]]:
        """Return ``(dotted key, value, source)`` for every setting, as :meth:`settings`
        lists them.

        The value is plain data as ``config show --format json`` prints it: ``str``,
        ``int``, ``float``, ``bool``, ``None``, lists and dicts (nested models as dicts,
        enums as their values, durations and dates as text); secrets masked as
        ``"**********"`` (``SecretStr`` fields and keys matching the masking patterns) and
        passwords in URLs masked, and the literal values of those secrets wherever they
        appear in other values. The source is as :meth:`source_of` says.

        Args:
            masker: what to mask (default: :func:`~cordio.observe.masking.masker_for` this
                configuration: ``log.mask_patterns`` and every secret value held here).
        """
        from cordio.config.commands import shown_value
        from cordio.observe.masking import masker_for

        masker = masker or masker_for(self)
        return [
            (dotted, shown_value(masker, dotted, value), self.source_of(dotted))
            for dotted, value in self.settings()
        ]

    def settings(self, section: str | None = None) -> list[tuple[str, Any]]:
        """``(dotted key, value)`` of every setting, sorted by section, fields in declaration
        order; a field declared as a model (``http.cors``) key by key (``http.cors.max_age``),
        any other value (lists, mappings) as one. Values as loaded: secrets not masked.

        Args:
            section: only this section's.
        """
        rows: list[tuple[str, Any]] = []
        for name, values in sorted(self.sections.items()):
            if section is None or name == section:
                rows += _leaves(name, values)
        return rows

    def source_of(self, key: str) -> str:
        """Where a field's value came from; for a mapping field set key by key, the most
        recent source of its entries."""
        if key in self.origins:
            return self.origins[key]
        inner = [o for k, o in self.origins.items() if k.startswith(key + ".")]
        return inner[-1] if inner else "default"

    def layer_of(self, key: str) -> str:
        """The layer a field's value came from (see ``layers``), ``default`` if none set it;
        for a table set key by key, the highest layer of its entries."""
        if key in self.layers:
            return self.layers[key]
        inner = [lay for k, lay in self.layers.items() if k.startswith(key + ".")]
        return max(inner, key=LAYER_ORDER.index) if inner else "default"


#: The layers lowest first, as :func:`load_config` merges them by default.
LAYER_ORDER = ("default", "file", "overlay", "env", ".env", "cli")


def _leaves(prefix: str, model: BaseModel) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, info in type(model).model_fields.items():
        value = getattr(model, key)
        declared = info.annotation
        if (
            isinstance(value, BaseModel)
            and isinstance(declared, type)
            and issubclass(declared, BaseModel)
        ):
            rows += _leaves(f"{prefix}.{key}", value)
        else:
            rows.append((f"{prefix}.{key}", value))
    return rows


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            _merge(old, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def origin_of(loc: Sequence[int | str], section: str, origins: Mapping[str, str]) -> str:
    """Return the most specific known source of a value at ``section.loc``: its own, else
    that of the first value set inside it (a table whose entries were set), else that of the
    nearest enclosing value."""
    parts = [section, *(str(p) for p in loc)]
    while len(parts) > 1:
        key = ".".join(parts)
        found = origins.get(key)
        if found:
            return found
        inner = next((o for k, o in origins.items() if k.startswith(key + ".")), None)
        if inner:
            return inner
        parts.pop()
    return "default"


class ConfigSources:
    """The configuration sources of an app, lowest priority first, and the policy.

    Example::

        App("orders", config=ConfigSources([FileSource(patterns=("etc/*.toml",)),
                                            EnvSource("orders")],
                                           policy=ConfigPolicy(duplicate="last")))

    Args:
        sources: readers of files, environment, ``.env``, command line... in priority order.
        policy: duplicate, parse-error and unknown-key policies (default: the spec's).
    """

    def __init__(self, sources: Sequence[Source], policy: ConfigPolicy | None = None) -> None:
        self.sources = list(sources)
        self.policy = policy or ConfigPolicy()

    @classmethod
    def default(cls, app_name: str, *, root: Path | None = None) -> ConfigSources:
        """Files (:data:`~cordio.config.files.DEFAULT_PATTERNS`; overlays named by
        ``<APP>__PROFILE`` and ``<APP>__CONFIG`` above them) < environment < ``.env``."""
        env_file = (root or Path()) / ".env"
        files = FileSource(root=root, app_name=app_name)
        return cls([files, EnvSource(app_name), DotEnvSource(app_name, env_file)])

    def with_command_line(
        self,
        cli: CliSource,
        *,
        config_files: Sequence[Path] = (),
        profiles: Sequence[str] = (),
        env_file: Path | None = None,
        policy: ConfigPolicy | None = None,
    ) -> ConfigSources:
        """A copy with command-line values on top, ``--config`` files and ``--profile``
        names as overlays of the last file source, and the ``.env`` file replaced by
        ``--env-file``."""
        sources = list(self.sources)
        if config_files or profiles:
            files = [i for i, s in enumerate(sources) if isinstance(s, FileSource)]
            if files:
                last = sources[files[-1]]
                assert isinstance(last, FileSource)
                sources[files[-1]] = replace(
                    last,
                    overlays=(*last.overlays, *config_files),
                    profiles=(*last.profiles, *profiles),
                )
            else:
                overlay = FileSource(patterns=(), overlays=tuple(config_files))
                sources.insert(0, replace(overlay, profiles=tuple(profiles)))
        if env_file is not None:
            dotenv = [i for i, s in enumerate(sources) if isinstance(s, DotEnvSource)]
            prefix = next((s.prefix for s in sources if isinstance(s, EnvSource)), "")
            if dotenv:
                old = sources[dotenv[-1]]
                assert isinstance(old, DotEnvSource)
                sources[dotenv[-1]] = replace(old, path=env_file)
            else:
                sources.append(DotEnvSource(prefix, env_file))
        sources.append(cli)
        return ConfigSources(sources, policy or self.policy)


def _where_to_set(key: str, sources: Sequence[Source]) -> str:
    section, _, rest = key.partition(".")
    places = []
    for source in sources:
        if isinstance(source, FileSource):
            places.append(f"a config file ([{section}] {rest})")
        elif isinstance(source, EnvSource | DotEnvSource):
            name = env_prefix(source.prefix) + key.upper().replace(".", "__")
            where = "env" if isinstance(source, EnvSource) else str(source.path)
            places.append(f"{where} {name}")
    places.append(f"--{key} or --set {key}=...")
    return "; set it in " + ", ".join(places)


def _validate_relaxed(
    config: Config, name: str, cls: type[Settings], data: dict[str, Any], exc: ValidationError
) -> bool:
    """Validate a section whose only errors are missing top-level values, with ``None``
    there; record them in ``config.missing``. ``False`` if it has other errors."""
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] != "missing" or len(e["loc"]) != 1 for e in errors):
        return False
    absent = [str(e["loc"][0]) for e in errors]
    fields: dict[str, Any] = {
        f: (Optional[cls.model_fields[f].annotation], None)  # noqa: UP045
        for f in absent
        if f in cls.model_fields
    }
    if len(fields) != len(absent):
        return False
    relaxed = create_model(cls.__name__, __base__=cls, **fields)
    try:
        config.sections[name] = relaxed.model_validate(data)
    except ValidationError:
        return False
    config.missing.extend(f"{name}.{f}" for f in absent)
    return True


def load_config(
    sections: Iterable[type[Settings]],
    sources: ConfigSources | Sequence[Source],
    *,
    unknown: str | None = None,
    allow_missing: bool = False,
) -> Config:
    """Read every source, merge the layers in order and validate each section.

    Args:
        sections: the section classes the app uses.
        sources: configuration sources, lowest priority first, with their policy.
        unknown: overrides the policy for keys no section declares: ``"warn"`` (logs a
            warning naming the key and its source), ``"ignore"`` or ``"stop"``.
        allow_missing: a required value no source sets is no error: the section holds
            ``None`` there and :attr:`Config.missing` names the key (for showing a partial
            configuration; never for running one).

    Returns:
        The validated :class:`Config`.

    Raises:
        ConfigError: listing every problem: unreadable or unparseable files (file and
            line), keys set by two files (both places, under the ``stop`` policy), invalid
            values (the dotted key, what was expected and the value's source; values are
            never echoed, so a wrong secret does not reach the logs), missing values (every
            place that could set them).
    """
    chain = sources if isinstance(sources, ConfigSources) else ConfigSources(sources)
    policy = chain.policy
    unknown = unknown or policy.unknown
    by_name = {cls.__section__: cls for cls in sections}
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    kinds: dict[str, str] = {}
    from_files: dict[str, str] = {}
    problems: list[str] = []
    for source in chain.sources:
        try:
            layers: list[Layer] = source.read(list(by_name), policy)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for layer in layers:
            if layer.kind == "file":  # the duplicate policy: among discovered files only
                for key, origin in layer.origins.items():
                    earlier = from_files.get(key)
                    if earlier is not None:
                        message = f"{key}: set by {earlier} and by {origin}"
                        if policy.duplicate == "stop":
                            problems.append(message + " (policy: stop on duplicates)")
                        else:
                            log.warning("config %s; the later one wins", message)
                    from_files[key] = origin
            _merge(merged, layer.values)
            origins.update(layer.origins)
            kinds.update(dict.fromkeys(layer.origins, layer.kind))

    strays = []
    for name, values in merged.items():
        cls = by_name.get(name)
        if cls is None:
            strays.append(name)
        elif isinstance(values, dict):
            if cls.model_config.get("extra") != "allow":
                strays.extend(f"{name}.{k}" for k in values if k not in cls.model_fields)
        else:
            problems.append(f"{name}: expected a table of keys, got a value ({origins[name]})")
    for key in strays:
        origin = next((o for k, o in origins.items() if k == key or k.startswith(key + ".")), "?")
        message = f"{key}: unknown key ({origin})"
        if unknown == "stop":
            problems.append(message)
        elif unknown == "warn":
            log.warning("config %s; no section declares it", message)

    config = Config(origins=origins, layers=kinds)
    for name, cls in by_name.items():
        data = merged.get(name, {})
        if not isinstance(data, dict):
            continue
        try:
            config.sections[name] = cls.model_validate(data)
        except ValidationError as exc:
            if allow_missing and _validate_relaxed(config, name, cls, data, exc):
                continue
            for err in exc.errors(include_input=False, include_url=False):
                loc = err["loc"]
                key = ".".join([name, *(str(p) for p in loc)])
                if err["type"] == "missing":
                    problems.append(
                        f"{key}: required, no source sets it" + _where_to_set(key, chain.sources)
                    )
                    continue
                problems.append(f"{key}: {err['msg']} ({origin_of(loc, name, origins)})")
    if problems:
        raise ConfigError(problems)
    return config
