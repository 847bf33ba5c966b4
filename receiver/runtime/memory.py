"""Fewer glibc malloc arenas for the monitor's process.

glibc gives each thread that allocates its own arena, up to eight per core, and memory
freed in one arena is not reused by another. The monitor allocates from its event loop
and from anyio's worker threads (database writes, /metrics, the alert rules), so its
peak RSS carried several arenas' worth of freed, unreturned memory: at 10,000 sites,
`MALLOC_ARENA_MAX=2` lowered bench/metrics.py's peak from 274 to 262 MB with the same
figures otherwise. Set with `mallopt` at start, before any thread exists, so that the
process needs no variable from whoever starts it; a `MALLOC_ARENA_MAX` the operator set
wins, and where the C library is not glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h
log = logging.getLogger(__name__)


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap the arenas (True when done); call before the process starts any thread."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX) refused; the C library's default stays")
    return done
