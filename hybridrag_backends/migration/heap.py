"""Keep the C heap from holding on to the buffers a streamed copy frees (glibc only).

A migration allocates and frees the same large buffers over and over: the JSON reader's 4 MB base64 chunks
of a NanoVectorDB matrix and their decoded rows, ijson's read buffers, asyncpg's COPY buffers (512 kB),
orjson's output. glibc serves an allocation of 128 kB or more with its own ``mmap`` and gives it back to the
system on ``free``, but the first time it frees such a block it raises that threshold to the block's size
(up to 32 MB: "dynamic mmap threshold"). From then on those buffers are carved out of the heaps of the
threads that allocate them (the reader's worker threads each have an arena), between small objects that
live longer, so their pages stay resident after ``free``: measured on 1 GB JSON -> PostgreSQL, the client's
RSS climbed by about 100 MB while the vector stores were copied, with only ~20 MB of Python objects live.

Settings made once per process, before the copy starts its worker threads:

* the mmap threshold fixed at 1 MB (``mallopt(M_MMAP_THRESHOLD)``, which also turns the dynamic adjustment
  off): the multi-MB buffers (matrix chunks, a batch's output) get mappings of their own, returned to the
  system when freed; the smaller ones (ijson's 256 kB reads, asyncpg's COPY buffers) are still reused from
  the heap, as they would be anyway, without a page fault per use;
* the trim threshold at 16 MB (``M_TRIM_THRESHOLD``; glibc's default, 128 kB, would hand the top of the heap
  back and fault it in again on every batch once the dynamic adjustment is off);
* at most two arenas (``mallopt(M_ARENA_MAX, 2)``, as ``MALLOC_ARENA_MAX=2`` would): the records are parsed
  in worker threads and freed on the event loop's thread, and glibc gives each thread an arena of its own
  (up to 8 per core), each keeping the pages of the batches it once served.

and :func:`release_free_pages` (``malloc_trim``) after each store, which the engine calls.

Measured with the migration's own process (an RSS sampler beside it) on 1 GB JSON -> PostgreSQL, peak
client RSS: 323 MB as it was (298 MB during the copy, the rest at verification); 241 MB during the copy with
a 128 kB threshold alone, 267 MB with two arenas alone; 248 MB over the whole run with all of the above.
The benchmark harness (GNU time, whole run) on the same 1 GB: 280 MB before, 226 MB after. On 5 GB,
sampled up to the graph stores: 298 MB with a 128 kB threshold and two arenas but no trim between stores
(the KV stores on top of the vector stores' freed pages), 265 MB with all of the above. Speed:
0.1 GB JSON -> JSON, three runs each interleaved on a loaded machine, median 20.4 s with these settings and
21.0 s without (a 128 kB threshold, with the trim threshold at its default, was slower). Results do not
change. Elsewhere than glibc (musl, macOS, Windows) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024
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
        trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        arenas = libc.mallopt(M_ARENA_MAX, ARENA_MAX)
        _done = bool(threshold and trim and arenas)
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
