"""Keeping secrets out of logs, metrics and errors: the one place that masks them.

A URL may carry credentials (`?token=...`, `user:pass@host`): `redact_url` replaces every
query value and the password with ***, `redact_query` does so in a request line (a path
with its query). `scrub` removes known secrets from free text (an exception message, a
vendor's error text, Apprise's log lines). Log filters apply them to records:
`install_log_redaction(names)` masks every query value in the request lines of uvicorn's
access log and httpx's own INFO line ("HTTP Request: POST <url> ..."), since the webhook
URL a partner registers carries `?token=<secret>`; `FragmentScrubber` masks the secret
fragments it is told of (the notifier's Apprise URLs).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

REDACTED = "***"
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]*")


def redact_url(url: str) -> str:
    """The URL with its userinfo password and every query value replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    pairs = [(k, REDACTED) for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_query(text: str) -> str:
    """`/x?token=abc&y=1` → `/x?token=***&y=***` (anywhere in `text`)."""
    return _QUERY_VALUE.sub(r"\1***", text)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL carries: its query values and its userinfo password."""
    parts = urlsplit(url)
    found = [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    if parts.password:
        found.append(parts.password)
    return tuple(s for s in found if s)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every occurrence of each secret replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class _QueryRedaction(logging.Filter):
    """Masks query values in a record's message and arguments (strings and httpx URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query(record.msg)
        return True


def _redacted(arg: object) -> object:
    if isinstance(arg, httpx.URL):
        return redact_url(str(arg))
    # Without "=" there is no query value to mask: the access log's client address,
    # method and HTTP version (and most paths) skip the regular expression.
    return redact_query(arg) if isinstance(arg, str) and "=" in arg else arg


class FragmentScrubber(logging.Filter):
    """Masks the secret fragments it has been given in every record it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.fragments: set[str] = set()

    def scrub(self, text: str) -> str:
        return scrub(text, tuple(self.fragments))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.fragments:
            record.msg = self.scrub(record.getMessage())
            record.args = None
        return True


_install_lock = threading.Lock()


def install_filter(name: str, log_filter: logging.Filter) -> None:
    """Add `log_filter` to the logger `name` unless a filter of its kind is there already."""
    logger = logging.getLogger(name)
    with _install_lock:
        if not any(type(f) is type(log_filter) for f in logger.filters):
            logger.addFilter(log_filter)


def install_log_redaction(names: Sequence[str] = ("httpx",)) -> None:
    """Mask query values in the records of these loggers (once per logger)."""
    for name in names:
        install_filter(name, _QueryRedaction())
