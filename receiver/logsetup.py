"""Logging set-up for the CLI: one format, quiet httpx, and no secret in any log line."""

from __future__ import annotations

import logging

from receiver.runtime.redaction import install_log_redaction


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The format shows none of the caller's file and line, thread or process: the logging
    # module need not look them up for every record (the Python logging HOWTO's
    # "Optimization"). The access log writes a record per request; a webhook delivery
    # spent about a quarter of its CPU time in logging.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # httpx logs every request at INFO: a poll cycle over a fleet would flood the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction(("uvicorn.access", "uvicorn.error", "httpx"))
