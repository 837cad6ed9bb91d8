"""Near-duplicate questions by embedding cosine, in tiles: never an n x n matrix in memory.

Items are in order (earlier published versions first, then the run's items); an item is a
near-duplicate when some earlier item has cosine >= threshold, and it points at the most
similar earlier one, so the earliest item of every group is kept. Memory is the vectors
(n x 384 float32: 300 MB at 200k) plus one ``rows`` x ``cols`` tile of similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Duplicate:
    index: int
    of: int
    cosine: float


def unit_rows(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (a zero row stays zero)."""
    m = np.array(vectors, dtype=np.float32, ndmin=2)
    if m.size == 0:
        return m.reshape(0, 0)
    m /= np.linalg.norm(m, axis=1, keepdims=True).clip(min=1e-12)
    return m


def best_earlier(m: np.ndarray, start: int, stop: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows ``start:stop`` of ``m``: the best cosine with any earlier row, and its index
    (-1 and -inf for row 0), computed in tiles of ``cols`` columns."""
    best = np.full(stop - start, -np.inf, dtype=np.float32)
    arg = np.full(stop - start, -1, dtype=np.int64)
    rows = m[start:stop]
    for c0 in range(0, stop, cols):
        c1 = min(c0 + cols, stop)
        sims = rows @ m[c0:c1].T
        if c1 > start:  # the diagonal tile: only columns before each row count
            idx = np.arange(start, stop)[:, None]
            sims[np.arange(c0, c1)[None, :] >= idx] = -np.inf
        j = sims.argmax(axis=1)
        top = sims[np.arange(len(j)), j]
        better = top > best
        best[better], arg[better] = top[better], j[better] + c0
    return best, arg


def near_duplicates(
    vectors: Sequence[Sequence[float]] | np.ndarray,
    threshold: float,
    first: int = 0,
    rows: int = 1024,
    cols: int = 16384,
) -> list[Duplicate]:
    """Items from index ``first`` on whose cosine with an earlier item is >= ``threshold``
    (items before ``first``, e.g. earlier versions, are compared against, never flagged)."""
    m = unit_rows(vectors)
    out: list[Duplicate] = []
    for r0 in range(max(first, 1), len(m), rows):
        r1 = min(r0 + rows, len(m))
        best, arg = best_earlier(m, r0, r1, cols)
        for k in np.nonzero(best >= threshold)[0]:
            out.append(Duplicate(r0 + int(k), int(arg[k]), round(float(best[k]), 4)))
    return out
