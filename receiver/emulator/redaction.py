"""Keeping secrets out of logs and records: URL redaction, scrubbing, httpx's request log.

A URL may carry credentials (`?token=...`, `user:pass@host`): `redact_url` replaces every
query value and the password with ***; `scrub` removes known secrets from free text (an
exception message); `install_httpx_redaction` filters httpx's own INFO line
("HTTP Request: POST <url> ...") that would otherwise print a query token.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx

REDACTED = "***"


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


def basic_header(username: str | None, password: str | None) -> str:
    """The Authorization value for URL userinfo (percent-decoded, as browsers do)."""
    credentials = f"{unquote(username or '')}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


class _HttpxUrlRedaction(logging.Filter):
    """httpx logs every request's full URL at INFO; query tokens must not reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_httpx_filter_lock = threading.Lock()


def install_httpx_redaction() -> None:
    """Add the redaction filter to httpx's logger once per process."""
    httpx_logger = logging.getLogger("httpx")
    with _httpx_filter_lock:
        if not any(isinstance(f, _HttpxUrlRedaction) for f in httpx_logger.filters):
            httpx_logger.addFilter(_HttpxUrlRedaction())
