"""What ``cordio config show`` and ``cordio config check`` do, apart from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretBytes, SecretStr, ValidationError

from cordio.config.files import FileSource
from cordio.config.loader import Config, ConfigSources, origin_of
from cordio.config.template import plain_value
from cordio.errors import ConfigError
from cordio.observe.masking import MASK, Masker, masker_for
from cordio.settings import Settings

ShowFormat = Literal["table", "json", "yaml"]

#: The source shown for a required value no source sets (its layer is ``missing``).
MISSING = "required, no source sets it"


def shown_value(masker: Masker, key: str, value: Any) -> Any:
    """A setting's value as plain JSON-able data, secrets masked: the value of a secret key
    or field, and inside every string known secrets, URL passwords and secret ``key=value``
    pairs (:meth:`Masker.data`). A boolean is never masked: it holds no secret
    (``http.cors.allow_credentials``)."""
    if isinstance(value, SecretStr | SecretBytes) or (
        masker.is_secret_key(key) and value not in (None, "", b"") and not isinstance(value, bool)
    ):
        return MASK
    return masker.data(plain_value(value))


def config_rows(
    config: Config, masker: Masker, section: str | None = None
) -> dict[str, dict[str, Any]]:
    """``{key: {value, source, layer}}`` of every effective value (of ``section``), masked
    as :func:`shown_value` says; a key of ``config.missing`` has value ``None``, layer
    ``missing`` and source :data:`MISSING`."""
    rows: dict[str, dict[str, Any]] = {}
    for dotted, value in config.settings(section):
        if dotted in config.missing:
            rows[dotted] = {"value": None, "source": MISSING, "layer": "missing"}
            continue
        rows[dotted] = {
            "value": shown_value(masker, dotted, value),
            "source": masker.known(config.source_of(dotted)),
            "layer": config.layer_of(dotted),
        }
    return rows


def show_config(
    config: Config,
    *,
    fmt: ShowFormat = "table",
    section: str | None = None,
    masker: Masker | None = None,
) -> str:
    """Render every effective value beside the layer and the source it came from, secrets
    masked; a field declared as a model (``http.cors``, ``policies.<name>``) key by key.

    Args:
        config: the loaded configuration.
        fmt: ``table`` (aligned columns: key, value, layer, source), ``json`` or ``yaml``
            (``{key: {value, source, layer}}``); layers as :attr:`Config.layers` names them.
            A key of ``config.missing`` shows value ``null``, layer ``missing`` and source
            :data:`MISSING`.
        section: only this section.
        masker: what to mask (default: :func:`~cordio.observe.masking.masker_for` the
            configuration: its patterns and every secret value it holds).

    Raises:
        KeyError: ``section`` is not one the app uses.
    """
    masker = masker or masker_for(config)
    if section is not None and section not in config.sections:
        raise KeyError(f"no section {section!r}; sections: {sorted(config.sections)}")
    rows = config_rows(config, masker, section)
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(rows, sort_keys=False, allow_unicode=True))
    texts = [
        (k, json.dumps(r["value"], default=str), r["layer"], r["source"]) for k, r in rows.items()
    ]
    width_key = max([3, *(len(t[0]) for t in texts)])
    width_value = min(60, max([5, *(len(t[1]) for t in texts)]))
    width_layer = max([5, *(len(t[2]) for t in texts)])
    head = f"{'key':<{width_key}}  {'value':<{width_value}}  {'layer':<{width_layer}}  source"
    lines = [head]
    lines += [
        f"{k:<{width_key}}  {v:<{width_value}}  {lay:<{width_layer}}  {s}" for k, v, lay, s in texts
    ]
    return "\n".join(lines) + "\n"


def check_files(
    sections: Iterable[type[Settings]],
    sources: ConfigSources,
    files: Sequence[Path] = (),
) -> tuple[list[str], list[str]]:
    """Validate config files one by one, as ``cordio config check`` does.

    Each file must parse, hold only known sections and keys (as the ``unknown`` policy
    says; policies and their parts the app does not declare are errors, as at start-up),
    give every key it sets a valid value, and set no key another discovered file
    sets (as the ``duplicate`` policy says; overlays, the profile files and ``--config``
    files, override on purpose). Keys a file leaves out are not errors: other sources may set
    them.

    Args:
        sections: the app's section classes.
        sources: the app's configuration sources (their file patterns and policy).
        files: check these instead of the discovered ones.

    Returns:
        ``(errors, warnings)``, each a list of lines naming file, line and key.
    """
    by_name = {cls.__section__: cls for cls in sections}
    policy = sources.policy
    readers = [s for s in sources.sources if isinstance(s, FileSource)] or [FileSource()]
    if files:
        only = replace(readers[-1], patterns=(), paths=tuple(files), overlays=(), profiles=())
        readers = [replace(only, app_name=None)]
    errors: list[str] = []
    warnings: list[str] = []
    seen: dict[str, str] = {}
    chosen: list[tuple[FileSource, Path, bool]] = []
    for reader in readers:
        chosen += [(reader, path, False) for path in reader.files()]
    for reader in readers:
        try:
            chosen += [(reader, path, True) for path in reader.overlay_files()]
        except ConfigError as exc:
            errors.extend(exc.problems)
    for reader, path, overlay in chosen:
        try:
            layer = reader.read_file(path, list(by_name))
        except ConfigError as exc:
            errors.extend(exc.problems)
            continue
        for key, origin in layer.origins.items():
            if overlay:
                continue  # an overlay overrides on purpose
            if key in seen:
                where = origin.removeprefix("file:")
                message = f"{where}: {key} is also set by {seen[key].removeprefix('file:')}"
                (errors if policy.duplicate == "stop" else warnings).append(message)
            seen[key] = origin
        for name, values in layer.values.items():
            cls = by_name.get(name)
            judge = getattr(cls, "unknown_problems", None)  # the app's own rules (policies)
            strays = (
                [name]
                if cls is None
                else [f"{name}.{k}" for k in values if k not in cls.model_fields]
                if isinstance(values, dict) and judge is None
                else []
            )
            for stray in strays:
                # a stray section has no origin of its own: that of its first key
                where = next(
                    (
                        o
                        for k, o in layer.origins.items()
                        if k == stray or k.startswith(stray + ".")
                    ),
                    str(path),
                )
                message = f"{where.removeprefix('file:')}: {stray}: unknown key"
                if policy.unknown == "stop":
                    errors.append(message)
                elif policy.unknown == "warn":
                    warnings.append(message)
            if cls is None:
                continue
            if not isinstance(values, dict):
                errors.append(f"{layer.origins.get(name, path)}: {name}: expected a table")
                continue
            if judge is not None:
                for loc, message in judge(values):
                    where = origin_of(loc, name, layer.origins).removeprefix("file:")
                    errors.append(f"{where}: {'.'.join((name, *loc))}: {message}")
            try:
                cls.model_validate(values)
            except ValidationError as exc:
                for err in exc.errors(include_input=False, include_url=False):
                    if err["type"] == "missing":
                        continue
                    loc = err["loc"]
                    key = ".".join([name, *(str(p) for p in loc)])
                    where = origin_of(loc, name, layer.origins).removeprefix("file:")
                    errors.append(f"{where}: {key}: {err['msg']}")
    return errors, warnings
