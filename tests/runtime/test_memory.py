"""The monitor's cap on glibc malloc arenas (receiver.runtime.memory), seen in glibc's
own account of its heaps: threads that allocate at once share two arenas, not one each."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Eight threads allocate at once, then glibc's malloc_info() lists its heaps (arenas).
PROBE = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from receiver.runtime.memory import limit_malloc_arenas
    print(limit_malloc_arenas() if sys.argv[1] == "cap" else "uncapped")
    barrier = threading.Barrier(8)
    def work():
        barrier.wait()
        keep = [bytearray(512) for _ in range(20000)]
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        handle = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, handle)
        libc.fclose(handle)
        print(open(out.name).read().count("<heap nr="))
    """
)


def heaps(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=clean, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, count = done.stdout.split()
    return first, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_info")
def test_threads_share_two_arenas_once_capped() -> None:
    _, uncapped = heaps("plain")
    done, capped = heaps("cap")
    assert uncapped > 2, "without the cap each allocating thread gets an arena of its own"
    assert done == "True"
    assert capped <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_info")
def test_an_operators_malloc_arena_max_wins() -> None:
    done, capped = heaps("cap", MALLOC_ARENA_MAX="4")
    assert done == "False"  # left to glibc, which read the variable itself
    assert capped <= 4


RELEASE = textwrap.dedent(
    """
    from receiver.runtime.memory import release_free_memory

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    # 150 MB of 1.5 KB blocks (glibc's heap, not Python's small-object arenas); every
    # 64th stays, so the heap cannot shrink from its top when the rest is freed.
    blocks = [bytes(1500) + bytes([i % 251]) for i in range(100_000)]
    kept = blocks[::64]
    del blocks
    before = rss_mb()
    released = release_free_memory()
    print(released, before, rss_mb())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_heap_pages_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RELEASE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    released, before, after = done.stdout.split()
    assert released == "True"
    assert float(before) - float(after) > 100, (before, after)
