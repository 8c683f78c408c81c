"""Secrets of random text and the ways they get embedded, for the masking property tests."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cordio.observe.masking import MIN_SECRET_LENGTH

#: Modest, for fast tests: each example starts an app or writes log lines.
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

URL_SPECIAL = ":/@?#%&=+ !$'()*,;[]~-._\"\\<>{}|^`"
ALPHABET = string.ascii_letters + string.digits + URL_SPECIAL + "éß€日"

#: A secret: random text with URL-special characters, not only ``*`` (it would look like
#: the mask), at least :data:`MIN_SECRET_LENGTH` long (8 here: shorter values could be
#: spelled by the text around them by chance).
secrets = st.text(alphabet=ALPHABET, min_size=max(8, MIN_SECRET_LENGTH), max_size=24).filter(
    lambda s: s.strip("*").strip() != "" and s == s.strip()
)

#: Text around a secret.
around = st.text(alphabet=ALPHABET + "\n\t", max_size=40)

Embed = Callable[[str], str]

EMBEDDINGS: dict[str, Embed] = {
    "plain": lambda s: s,
    "url": lambda s: f"amqp://guest:{quote(s, safe='')}@mq:5672/vhost",
    "url-plus": lambda s: f"https://api.example/x?q={quote_plus(s)}",
    "url-user": lambda s: f"redis://{quote(s, safe='')}@cache:6379/0",
    "json": lambda s: json.dumps({"config": {"value": s, "list": [1, s]}}),
    "json-ascii": lambda s: json.dumps({"v": s}, ensure_ascii=False),
    "repr": lambda s: repr({"connect": s}),
    "header": lambda s: f"Authorization: Bearer {s}",
    "pair": lambda s: f"password={s}",
}

embeddings = st.sampled_from(sorted(EMBEDDINGS))


def written_forms(secret: str) -> set[str]:
    """The ways ``secret`` could show up in an output, none of which may."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
    }


def assert_hidden(secret: str, out: str) -> None:
    for form in written_forms(secret):
        assert form not in out, f"{form!r} survived in {out!r}"
