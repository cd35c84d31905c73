"""migration.heap: once a migration starts, glibc serves large buffers from mappings of their own and the
threads share two arenas, so a freed copy buffer goes back to the system (a migration's memory does not
grow with the database's size).

Checked in a fresh interpreter each (the test process's own allocator is not touched) through glibc's own
accounting: ``mallinfo2().hblkhd`` (bytes in mmap-ed blocks: after a 1 MB block is freed, glibc's dynamic
threshold would serve the next 256 kB block from the heap; with ``bound_heap()`` it is mmap-ed) and the
heaps ``malloc_info`` lists (one arena per thread without it). Each has a twin showing glibc's default.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the mmap threshold is a glibc setting; elsewhere bound_heap() does nothing")

PROBE = r"""
import ctypes, sys
from hybridrag_backends.migration.heap import bound_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "bound":
    assert bound_heap() is True
libc.free(libc.malloc(8 << 20))  # a large buffer freed, as a copy frees its chunks
before = libc.mallinfo2().hblkhd
block = libc.malloc(2 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def mapped_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_large_block_after_a_freed_one_is_mapped_apart_with_bound_heap() -> None:
    assert mapped_bytes("bound") >= 2 << 20


def test_without_it_glibc_serves_it_from_the_heap() -> None:
    # the behaviour bound_heap() exists for: if glibc stopped raising its threshold, this would say so
    assert mapped_bytes("default") == 0


ARENAS = r"""
import ctypes, os, sys, tempfile, threading
from hybridrag_backends.migration.heap import bound_heap

libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "bound":
    assert bound_heap() is True
ready = threading.Barrier(6)

def work():  # six threads alive at once, each allocating (as the reader's worker threads do)
    block = libc.malloc(4096)
    ready.wait()
    libc.free(block)

threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(open(path).read().count("<heap nr="))
"""


def arenas(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_worker_threads_share_two_arenas_with_bound_heap() -> None:
    assert arenas("bound") <= 2


def test_without_it_each_thread_gets_an_arena() -> None:
    assert arenas("default") >= 4


TRIM = r"""
import sys
from hybridrag_backends.migration.heap import bound_heap, release_free_pages

def rss_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))

assert bound_heap() is True
blocks = [bytearray(4000) for _ in range(30000)]  # 120 MB of medium blocks, as a store's records
kept = blocks[::8]  # a few live on between them, so the freed pages are not at the heap's top
del blocks
before = rss_kb()
released = release_free_pages()
print(released, before - rss_kb())
"""


def test_release_free_pages_gives_freed_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, check=True)
    released, dropped_kb = out.stdout.split()
    assert released == "True"
    assert int(dropped_kb) > 50_000  # most of the 105 MB freed between the kept blocks
