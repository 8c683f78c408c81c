"""Config files: discovery by glob patterns, reading, format detection, section files.

Files matching the patterns are taken in alphabetical order of their base names (then full
path), explicit ``paths`` after them: together the discovered layer, where a key set by two
files is a duplicate (:class:`~cordio.config.ConfigPolicy`). Above it, the overlay layer:
profile files (``config/main.prod.toml``, ``etc/db.prod.toml`` for the profile ``prod``), then
the files named with ``--config`` (or ``<APP>__CONFIG``), in the order given, each overriding
the ones below key by key. A file whose name has two dots (``main.prod.toml``) is a profile
file: read only when its profile is active, never as a discovered file.

A file named after a section (``etc/db.toml``, ``etc/db.prod.toml``) holds that section:
either as a ``[db]`` table or as bare keys; any other
file (``config/main.yaml``) holds sections as top-level tables. A file whose extension does
not parse, or that has none, is tried in the other formats in turn.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from cordio.config.formats import EXTENSIONS, FORMATS, FormatError, Parsed, flatten, parse
from cordio.config.sources import ConfigPolicy, Layer
from cordio.errors import ConfigError

log = logging.getLogger("cordio.config")

#: Files larger than this are refused, so a stray file matching a glob cannot hang start-up.
MAX_FILE_BYTES = 1 << 20
DEFAULT_PATTERNS = ("config/**/main.{json,yaml,toml}", "etc/**/*.{toml,yaml,json}")
_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``a.{x,y}`` into ``["a.x", "a.y"]`` (glob itself does not)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in expand_braces(head + alt + tail)]


def read_text(path: Path, max_bytes: int) -> str:
    """Read a config file as UTF-8 (a byte-order mark is dropped).

    Raises:
        ConfigError: the path is a directory, unreadable, over ``max_bytes``, not UTF-8 or
            holds NUL bytes; the message names the file.
    """
    if path.is_dir():
        raise ConfigError([f"{path}: is a directory, not a config file"])
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError([f"{path}: {size} bytes is over the limit of {max_bytes}"])
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 at byte {exc.start}"]) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError([f"{path}:{line}: contains NUL bytes"])
    return text


def parse_file(path: Path, text: str) -> tuple[Parsed, str]:
    """Parse ``text`` in the format its extension names, else in each format in turn.

    Returns:
        The parsed document and the format that parsed it.

    Raises:
        ConfigError: no format parses it; one line per format with its error.
    """
    first = EXTENSIONS.get(path.suffix.lower())
    order = [first] if first else []
    order += [f for f in FORMATS if f != first]
    errors = []
    for fmt in order:
        try:
            return parse(text, fmt), fmt
        except FormatError as exc:
            if fmt == first and _is_limit(exc):
                raise ConfigError([_located(path, exc, fmt)]) from None
            errors.append(_located(path, exc, fmt))
    if first is None:
        errors.insert(0, f"{path}: no extension names its format, and none parses it:")
    else:
        errors[1:] = [f"  and {e.split(': ', 1)[1]}" for e in errors[1:]]
    raise ConfigError(errors)


def _is_limit(exc: FormatError) -> bool:
    return (
        "nested deeper" in exc.message or "more than" in exc.message or "duplicate" in exc.message
    )


_NAMES = {
    "toml": "TOML",
    "yaml": "YAML",
    "json": "JSON",
    "jsonc": "JSON with comments",
    "ini": "INI",
}


def _located(path: Path, exc: FormatError, fmt: str) -> str:
    where = f"{path}:{exc.line}" if exc.line else str(path)
    return f"{where}: invalid {_NAMES[fmt]}: {exc.message}"


def is_profile_file(path: Path) -> bool:
    """Whether ``path`` is a profile file: its name has two dots (``main.prod.toml``)."""
    return len(path.name.lstrip(".").split(".")) >= 3


def _profile_pattern(pattern: str, profile: str) -> str | None:
    head, sep, last = pattern.rpartition("/")
    stem, dot, ext = last.rpartition(".")
    if not dot or not stem:
        return None
    return f"{head}{sep}{stem}.{profile}.{ext}"


def _words(raw: str, sep: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in raw.split(sep) if w.strip())


@dataclass
class FileSource:
    """Config files: the discovered layer (glob patterns, then ``paths``) and the overlay
    layer above it (profile files, then ``overlays``).

    Args:
        patterns: glob patterns (``**`` recurses, ``{a,b}`` alternates), relative to
            ``root`` unless absolute. Default: ``config/**/main.{json,yaml,toml}`` and
            ``etc/**/*.{toml,yaml,json}``.
        root: where relative patterns start; default the current directory.
        paths: explicit files of the discovered layer, read after the found ones, in order.
        max_bytes: a larger file is refused (default 1 MiB).
        profiles: active profiles, in order (``("prod",)``): for each, the files the
            patterns find with the profile before the extension (``config/main.prod.toml``,
            ``etc/db.prod.toml``) are overlays.
        overlays: overlay files (``--config``), read after the profile files, in order.
        app_name: when set, the environment adds profiles and overlays before those given:
            ``<APP>__PROFILE`` (comma-separated names) and ``<APP>__CONFIG`` (paths
            separated by ``os.pathsep``, ``:`` on POSIX).
        environ: the mapping ``app_name`` reads; default :data:`os.environ`.
    """

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    root: Path | None = None
    paths: tuple[Path, ...] = ()
    max_bytes: int = MAX_FILE_BYTES
    profiles: tuple[str, ...] = ()
    overlays: tuple[Path, ...] = ()
    app_name: str | None = None
    environ: Mapping[str, str] | None = None

    def _glob(self, patterns: Collection[str]) -> list[Path]:
        root = self.root or Path.cwd()
        found: set[Path] = set()
        for pattern in patterns:
            for expanded in expand_braces(pattern):
                full = expanded if os.path.isabs(expanded) else str(root / expanded)
                found.update(Path(p) for p in glob.glob(full, recursive=True))
        return sorted(found, key=lambda p: (p.name, str(p)))

    def files(self) -> list[Path]:
        """The discovered layer, in order: files found by the patterns sorted by base name
        (profile files left out), then ``paths``."""
        found = [p for p in self._glob(self.patterns) if not is_profile_file(p)]
        return found + [Path(p) for p in self.paths if Path(p) not in found]

    def active_profiles(self) -> tuple[str, ...]:
        """The profiles in force: those of ``<APP>__PROFILE``, then ``profiles``."""
        env: tuple[str, ...] = ()
        if self.app_name is not None:
            from cordio.config.sources import env_prefix

            environ = os.environ if self.environ is None else self.environ
            env = _words(environ.get(env_prefix(self.app_name) + "PROFILE", ""), ",")
        return tuple(dict.fromkeys((*env, *self.profiles)))

    def overlay_files(self) -> list[Path]:
        """The overlay layer, in order: each active profile's files (sorted by base name),
        then the files of ``<APP>__CONFIG``, then ``overlays``.

        Raises:
            ConfigError: a profile name is not letters, digits, ``-`` and ``_``.
        """
        out: list[Path] = []
        bad = [p for p in self.active_profiles() if not re.fullmatch(r"[A-Za-z0-9_-]+", p)]
        if bad:
            raise ConfigError([f"profile {p!r}: use letters, digits, - and _" for p in bad])
        for profile in self.active_profiles():
            patterns = [_profile_pattern(p, profile) for p in self.patterns]
            out += [p for p in self._glob([p for p in patterns if p]) if p not in out]
        env: tuple[str, ...] = ()
        if self.app_name is not None:
            from cordio.config.sources import env_prefix

            environ = os.environ if self.environ is None else self.environ
            env = _words(environ.get(env_prefix(self.app_name) + "CONFIG", ""), os.pathsep)
        return out + [Path(p) for p in env] + [Path(p) for p in self.overlays]

    def read(
        self, sections: Collection[str] = (), policy: ConfigPolicy | None = None
    ) -> list[Layer]:
        """Read the discovered files (layers of kind ``file``), then the overlays (kind
        ``overlay``).

        Raises:
            ConfigError: files that cannot be read or parsed (unless the policy skips
                them), a named overlay that does not exist.
        """
        policy = policy or ConfigPolicy()
        layers = []
        problems: list[str] = []
        try:
            overlays = self.overlay_files()
        except ConfigError as exc:
            problems.extend(exc.problems)
            overlays = []
        for path, overlay in [(p, False) for p in self.files()] + [(p, True) for p in overlays]:
            try:
                layer = self.read_file(path, sections)
                if overlay:
                    layer.kind = "overlay"
                layers.append(layer)
            except ConfigError as exc:
                if policy.parse_error == "skip":
                    for line in exc.problems:
                        print(f"cordio: config file skipped: {line}", file=sys.stderr)
                    log.warning("config file %s skipped: %s", path, "; ".join(exc.problems))
                else:
                    problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        return layers

    def read_file(self, path: Path, sections: Collection[str] = ()) -> Layer:
        """Read one file into a layer.

        Raises:
            ConfigError: the file cannot be read or parsed (file and line named).
        """
        text = read_text(path, self.max_bytes)
        try:
            parsed, _ = parse_file(path, text)
        except ConfigError as exc:
            for line in exc.problems:
                print(f"cordio: {line}", file=sys.stderr)
            raise
        values, lines = parsed.values, parsed.lines
        stem = path.name.split(".")[0]
        wrapped = set(values) == {stem} and isinstance(values[stem], dict)
        if stem in sections and stem != "main" and not wrapped:
            values = {stem: values}
            lines = {(stem, *k): v for k, v in lines.items()}
        layer = Layer(f"file:{path}", "file")
        for key, value in flatten(values):
            number = lines.get(key)
            layer.set(key, value, f"file:{path}:{number}" if number else f"file:{path}")
        return layer
