"""Keep the C heap from holding on to the buffers a streamed copy frees (glibc only).

A migration allocates and frees the same large buffers over and over: the JSON reader's 4 MB base64 chunks
of a NanoVectorDB matrix and their decoded rows, ijson's read buffers, asyncpg's COPY buffers (512 kB),
orjson's output. glibc serves an allocation of 128 kB or more with its own ``mmap`` and gives it back to the
system on ``free``, but the first time it frees such a block it raises that threshold to the block's size
(up to 32 MB: "dynamic mmap threshold"). From then on those buffers are carved out of the heaps of the
threads that allocate them (the reader's worker threads each have an arena), between small objects that
live longer, so their pages stay resident after ``free``: measured on 1 GB JSON -> PostgreSQL, the client's
RSS climbed by about 100 MB while the vector stores were copied, with only ~20 MB of Python objects live.

Two settings, made once per process before the copy starts its worker threads:

* the mmap threshold fixed at glibc's own default (``mallopt(M_MMAP_THRESHOLD, 128 kB)``, which also turns
  the dynamic adjustment off, for the trim threshold too): every large buffer gets its own mapping, returned
  to the system when freed;
* at most two arenas (``mallopt(M_ARENA_MAX, 2)``, as ``MALLOC_ARENA_MAX=2`` would): the records are parsed
  in worker threads and freed on the event loop's thread, and glibc gives each thread an arena of its own
  (up to 8 per core), each keeping the pages of the batches it once served.

Measured on the same 1 GB run (peak client RSS during the copy; 298 MB as it was): 241 MB with the
threshold alone, 267 MB with two arenas alone, about 227 MB with both. Memory then stays bounded by the
batches in flight whatever the database's size. It changes no result and costs one ``mmap``/``munmap`` per
large buffer (the threads barely contend for the arena: they take the GIL to build Python objects).
Elsewhere than glibc (musl, macOS, Windows) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_MMAP_THRESHOLD = -3  # <malloc.h>
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's default (DEFAULT_MMAP_THRESHOLD_MIN)
ARENA_MAX = 2

_done = False
_libc = None


def bound_heap() -> bool:
    """Fix glibc's mmap threshold and arena count for this process (once; later calls do nothing). True when
    they are set."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        global _libc
        _libc = libc
        threshold = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        arenas = libc.mallopt(M_ARENA_MAX, ARENA_MAX)
        _done = bool(threshold and arenas)
    except (OSError, AttributeError):
        return False
    return _done


def release_free_pages() -> bool:
    """Give the pages of freed blocks back to the system (``malloc_trim``), after ``bound_heap()``. Called
    between stores: the next store's records have other sizes, which the freed blocks of the last one seldom
    fit, so without it the peak of each store would add up instead of the largest one counting. Costs
    milliseconds to a few hundred (run it in a worker thread: ctypes releases the GIL). True when pages
    were given back."""
    return bool(_done and _libc is not None and _libc.malloc_trim(0))
