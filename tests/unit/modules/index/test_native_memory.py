"""What indexing does after each batch: the C heap's free pages go back to the system
(``embeddings.release_native_memory``), so resident memory is bounded by the batch."""

from __future__ import annotations

import ctypes
import sys

import psutil
import pytest

from modules.index import embeddings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or embeddings._libc() is None, reason="glibc only"
)
BLOCK, BLOCKS = 64 * 1024, 3000  # ~190 MB of heap blocks (under the mmap threshold)


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def test_release_returns_the_free_heap_pages_a_live_block_pins() -> None:
    """Blocks freed below one still in use stay resident (glibc cannot shrink its heap past
    a live block; this is what a batch's tensors leave behind); the release gives them back."""
    libc = embeddings._libc()
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for b in blocks:
        ctypes.memset(b, 1, BLOCK)
    for b in blocks[:-1]:
        libc.free(b)
    held = _rss_mb()
    assert embeddings.release_native_memory()
    released = _rss_mb()
    libc.free(blocks[-1])
    assert held - released > 0.5 * BLOCK * BLOCKS / 2**20, (held, released)
