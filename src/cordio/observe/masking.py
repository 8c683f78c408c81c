"""Masking of confidential values: secret settings, their values anywhere, credentials in
URLs, ``key=value`` pairs.

One :class:`Masker` per run of an app (:func:`masker_for` builds it from the loaded
configuration) serves every output: log lines, ``/admin/config``, ``cordio config show``,
Sentry events, span attributes and the detail of error replies. It hides

- the value of a :class:`pydantic.SecretStr` / ``SecretBytes`` field, and of a key matching
  one of the patterns (default: password, passwd, pwd, token, secret, key, apikey, dsn,
  credential(s), private, authorization, cookie, session; each a whole word of the key:
  ``api_key``, ``db.password``, ``X-Auth-Token``, ``session_id``);
- the literal value of every such setting (a *known secret*) wherever it turns up inside a
  string: a log message, an exception text, a traceback, a URL, a JSON document. Also its
  escaped forms: as ``json.dumps`` and ``repr`` write it, and percent-encoded as in a URL.
  Values shorter than :data:`MIN_SECRET_LENGTH` characters are not looked for (``"1"`` or
  ``"on"`` would mask every number and word), nor are values made of ``*`` only (they look
  like the mask already); the key and URL rules still hide them where they are named;
- the password of every URL (``amqp://guest:**********@mq:5672/``) and the value of every
  ``key=value`` / ``key: value`` pair whose key is secret.

Known secrets are found with one compiled regular expression, an alternation of the
escaped values, longest first, so a secret that contains another is masked whole.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from cordio.config.loader import Config

MASK = "**********"
DEFAULT_PATTERNS = (
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "apikey",
    "dsn",
    "credential",
    "credentials",
    "private",
    "authorization",
    "cookie",
    "session",
)
#: Known secrets shorter than this are not looked for inside strings (see the module).
MIN_SECRET_LENGTH = 4

# the scheme starts where no scheme character precedes it: without the lookbehind a long run
# of letters is tried from every position (quadratic: 0.2 s for 16,000 letters)
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)


class Masker:
    """Decides what is secret and masks it.

    Args:
        patterns: words that make a key secret (see the module docstring).
        secrets: known secret values, masked wherever they appear inside a string.
    """

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS, secrets: Iterable[Any] = ()):
        self.patterns = tuple(patterns)
        words = "|".join(re.escape(p.lower()) for p in self.patterns) or r"(?!)"
        self._key = re.compile(rf"(?:^|[._\-])(?:{words})(?:$|[._\-])")
        # a key holding a secret word as a whole word (``api_key=``, ``db.password:``,
        # ``X-Auth-Token:``), not inside another word (``KeyError: 'x'`` is no secret)
        self._pair = re.compile(
            rf"(?P<k>(?<![\w.\-])(?:[\w.\-]*[._\-])?(?:{words})(?:[._\-][\w.\-]*)?\s*[=:]\s*)"
            r"(?P<v>\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
            re.IGNORECASE,
        )
        known: set[str] = set()
        for value in secrets:
            known.update(_forms(value))
        self.secrets = frozenset(known)
        self._known = (
            re.compile("|".join(re.escape(v) for v in sorted(known, key=lambda v: (-len(v), v))))
            if known
            else None
        )

    def with_secrets(self, secrets: Iterable[Any]) -> Masker:
        """A masker of the same patterns that also knows ``secrets``."""
        return Masker(self.patterns, [*self.secrets, *secrets])

    def is_secret_key(self, key: str) -> bool:
        """Whether a dotted key (``db.password``) names a secret."""
        return bool(self._key.search(key.lower()))

    def value(self, key: str, value: Any) -> str:
        """Render a setting's value for display: secrets as ``**********``, URLs without
        their password, anything else as ``repr``."""
        if isinstance(value, SecretStr | SecretBytes) or (
            self.is_secret_key(key) and value not in (None, "", b"")
        ):
            return MASK
        if isinstance(value, BaseModel | dict | list | tuple):  # nested models as plain data
            value = to_jsonable_python(value)
        return self.known(mask_urls(repr(value)))

    def known(self, text: str) -> str:
        """Mask the known secrets in ``text`` (only them: key names stay readable)."""
        if self._known is None:
            return text
        while True:  # again: a mask beside text may spell another secret ("*abc")
            text, found = self._known.subn(MASK, text)
            if not found:
                return text

    def text(self, text: str) -> str:
        """Mask known secrets, URL passwords and secret ``key=value`` pairs in free text
        (log messages, exception texts, tracebacks)."""
        text = self.known(text)
        masked = self._pair.sub(lambda m: m.group("k") + MASK, mask_urls(text))
        return self.known(masked) if masked != text else masked

    def data(self, value: Any, key: str = "") -> Any:
        """``value`` (plain data: mappings, lists, strings...) with every secret masked: the
        value under a secret key (a boolean or ``None`` is kept: it holds no secret),
        ``SecretStr``/``SecretBytes``, and known secrets, URL passwords and secret pairs
        inside every string (keys included). Returns new containers; ``value`` is not
        changed."""
        if isinstance(value, SecretStr | SecretBytes):
            return MASK
        if key and self.is_secret_key(key) and _holds_secret(value):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "backslashreplace"))
        if isinstance(value, Mapping):
            return {
                (self.text(k) if isinstance(k, str) else k): self.data(v, str(k))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def _holds_secret(value: Any) -> bool:
    return value not in (None, "", b"") and not isinstance(value, bool)


def _forms(value: Any) -> set[str]:
    """The strings a secret ``value`` may be written as: itself, escaped as JSON and
    ``repr`` write it, percent-encoded; those :class:`Masker` looks for."""
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        texts = {value.decode("utf-8", "backslashreplace"), repr(value)[2:-1]}
    elif isinstance(value, str):
        texts = {value}
    else:
        return set()
    forms = set()
    for text in texts:
        forms |= {
            text,
            json.dumps(text)[1:-1],
            json.dumps(text, ensure_ascii=False)[1:-1],
            repr(text)[1:-1],
            quote(text, safe=""),
            quote(text),
            quote_plus(text),
        }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH and f.strip("*")}


def secret_values(masker: Masker, value: Any, key: str = "") -> list[Any]:
    """The secret values inside ``value`` (a settings model, or plain data under dotted
    ``key``): ``SecretStr``/``SecretBytes`` anywhere, every string under a secret key, and
    the password of every URL (as written and percent-decoded)."""
    found: list[Any] = []
    if isinstance(value, SecretStr | SecretBytes):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += secret_values(masker, getattr(value, name), f"{key}.{name}" if key else name)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            found += secret_values(masker, item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found += secret_values(masker, item, key)
    elif isinstance(value, str | bytes):
        if key and masker.is_secret_key(key):
            found.append(value)
        if isinstance(value, str):
            for match in _URL_PASSWORD.finditer(value):  # as written, and decoded
                found += [match.group("pw"), unquote(match.group("pw"))]
    return found


def masker_for(config: Config, patterns: Iterable[str] | None = None) -> Masker:
    """The masker of a run: the patterns of ``log.mask_patterns`` (or ``patterns``), and
    every secret value of ``config`` as a known secret."""
    if patterns is None:
        from cordio.observe.logging import LogSettings

        log_settings = config.sections.get(LogSettings.__section__)
        patterns = (
            log_settings.mask_patterns
            if isinstance(log_settings, LogSettings)
            else DEFAULT_PATTERNS
        )
    masker = Masker(patterns)
    secrets: list[Any] = []
    for name, section in config.sections.items():
        secrets += secret_values(masker, section, name)
    return masker.with_secrets(secrets)


def mask_urls(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


_current: ContextVar[Masker | None] = ContextVar("cordio_masker", default=None)
_DEFAULT = Masker()


def use_masker(masker: Masker | None) -> None:
    """Make ``masker`` (the running app's) the current task's, and that of the tasks it
    starts from now on."""
    _current.set(masker)


def current_masker() -> Masker:
    """The running app's masker; outside an app one of the default patterns, knowing no
    secret value."""
    return _current.get() or _DEFAULT


def masked(text: str) -> str:
    """``text`` masked by the running app's masker (:func:`current_masker`)."""
    return current_masker().text(text)


#: A record with this attribute set true names keys but holds no values (a configuration
#: error: "db.password: required, no source sets it"): only URL passwords and known
#: secrets are masked in it, so the key names stay readable.
KEYS_ONLY = "cordio_keys_only"


class MaskingFilter(logging.Filter):
    """Logging filter masking secrets in every record's message, traceback and structured
    ``fields`` (see :class:`Masker`); a record marked :data:`KEYS_ONLY` has only its URL
    passwords and known secrets masked."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if getattr(record, KEYS_ONLY, False):
            masked = self.masker.known(mask_urls(message))
        else:
            masked = self.masker.text(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info:
            text = record.exc_text or _formatter.formatException(record.exc_info)
            record.exc_text = self.masker.text(text)
        if record.stack_info:
            record.stack_info = self.masker.text(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = self.masker.data(fields)
        return True


_formatter = logging.Formatter()
