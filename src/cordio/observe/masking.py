"""Masking of confidential values: secret settings, credentials in URLs, ``key=value`` pairs.

A value is secret when its field is a :class:`pydantic.SecretStr` / ``SecretBytes`` or its
key matches one of the patterns (default: password, passwd, pwd, token, secret, key, dsn,
credential(s), private, each as a whole word of the key: ``api_key``, ``db.password``,
``auth-token``). Passwords inside URLs (``scheme://user:password@host``) are masked wherever
they appear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

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
)

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]+)@")


class Masker:
    """Decides what is secret and masks it.

    Args:
        patterns: words that make a key secret (see the module docstring).
    """

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        words = "|".join(re.escape(p.lower()) for p in patterns)
        self._key = re.compile(rf"(?:^|[._\-])(?:{words})(?:$|[._\-])")
        # a key holding a secret word as a whole word (``api_key=``, ``db.password:``,
        # ``X-Auth-Token:``), not inside another word (``KeyError: 'x'`` is no secret)
        self._pair = re.compile(
            rf"(?P<k>(?<![\w.\-])(?:[\w.\-]*[._\-])?(?:{words})(?:[._\-][\w.\-]*)?\s*[=:]\s*)"
            r"(?P<v>\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
            re.IGNORECASE,
        )

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
        return mask_urls(repr(value))

    def text(self, text: str) -> str:
        """Mask URL passwords and secret ``key=value`` pairs in free text (log messages)."""
        text = mask_urls(text)
        return self._pair.sub(lambda m: m.group("k") + MASK, text)


def mask_urls(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


#: A record with this attribute set true names keys but holds no values (a configuration
#: error: "db.password: required, no source sets it"): only URL passwords are masked in it,
#: so the key names stay readable.
KEYS_ONLY = "cordio_keys_only"


class MaskingFilter(logging.Filter):
    """Logging filter masking secrets in every record's message (see :class:`Masker`); a
    record marked :data:`KEYS_ONLY` has only its URL passwords masked."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if getattr(record, KEYS_ONLY, False):
            masked = mask_urls(message)
        else:
            masked = self.masker.text(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info:
            text = record.exc_text or _formatter.formatException(record.exc_info)
            record.exc_text = self.masker.text(text)
        return True


_formatter = logging.Formatter()
