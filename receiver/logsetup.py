"""Logging set-up for the CLI: one format, and no secret in any log line.

uvicorn's access log prints each request's path *with its query string* — and the
webhook URL a Cellect partner registers carries `?token=<secret>`. `RedactQueryFilter`
rewrites every query value of the access log to `***` before it is formatted.
"""

from __future__ import annotations

import logging
import re

_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]*")


def redact_query(text: str) -> str:
    """`/x?token=abc&y=1` → `/x?token=***&y=***`."""
    return _QUERY_VALUE.sub(r"\1***", text)


class RedactQueryFilter(logging.Filter):
    """Masks query values in the string arguments of a log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query(record.msg)
        return True


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: a poll cycle over a fleet would flood the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redactor = RedactQueryFilter()
    for name in ("uvicorn.access", "uvicorn.error", "httpx"):
        logging.getLogger(name).addFilter(redactor)
