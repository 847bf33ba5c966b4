"""glibc's heap in the monitor's process: fewer malloc arenas, free pages handed back.

glibc gives each thread that allocates its own arena, up to eight per core, and memory
freed in one arena is not reused by another. The monitor allocates from its event loop
and from anyio's worker threads (database writes, /metrics, the alert rules), so its
peak RSS carried several arenas' worth of freed, unreturned memory: at 10,000 sites,
`MALLOC_ARENA_MAX=2` lowered bench/metrics.py's peak from 274 to 262 MB with the same
figures otherwise. Set with `mallopt` at start, before any thread exists, so that the
process needs no variable from whoever starts it; a `MALLOC_ARENA_MAX` the operator set
wins, and where the C library is not glibc nothing is done.

`release_free_memory()` hands the pages glibc holds free back to the system
(`malloc_trim`): after a burst of short-lived objects (a PortfolioOverview of 10,000
sites parsed, stored and published: ~15-25 MB) the heap keeps its top, and the next burst
starts from there; RSS crept up by a burst's worth at each poll.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Any

ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h
log = logging.getLogger(__name__)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _glibc_function(name: str) -> Any | None:
    """The C library's function `name`, or None where it has none (not glibc: musl has
    neither mallopt nor malloc_trim)."""
    libc = _libc()
    return None if libc is None else getattr(libc, name, None)


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap the arenas (True when done); call before the process starts any thread."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX) refused; the C library's default stays")
    return done


def release_free_memory() -> bool:
    """Return glibc's free heap pages to the system (True when it released any); a no-op
    where the C library has no `malloc_trim`. Takes a few ms: call it after a burst, off
    the event loop."""
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return bool(trim(0))
