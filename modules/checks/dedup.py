"""Near-duplicate questions by embedding cosine, in tiles: never an n x n matrix in memory.

Items are in order (earlier published versions first, then the run's items); an item is a
near-duplicate when some earlier item has cosine >= threshold, and it points at the most
similar earlier one, so the earliest item of every group is kept. Memory is the vectors
(n x 384 float32: 300 MB at 200k, plus 77 MB of int8 copies) and one ``rows`` x ``cols``
tile of products.

From ``FAST_MIN`` items on, the columns before a row block are first screened with int8
products (``modules.checks.dedup_int8``: a proven error bound, so no pair at or above the
threshold is missed) and only the (row, tile) pairs the screen keeps are rescored exactly
in float32; the block's own diagonal square is always exact. Results equal the exact pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modules.checks.dedup_int8 import Int8Screen

FAST_MIN = 20_000  # below this the exact float32 pass takes a few seconds at most
SCREEN_COLS = 4096  # screened tile width: a kept row is rescored on 4096 columns only


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


def _update(best: np.ndarray, arg: np.ndarray, rows: np.ndarray, sims: np.ndarray, c0: int):
    """Fold one tile of exact cosines (for the row offsets ``rows``) into best/arg."""
    j = sims.argmax(axis=1)
    top = sims[np.arange(len(j)), j]
    better = top > best[rows]
    best[rows[better]], arg[rows[better]] = top[better], j[better] + c0


def best_earlier(
    m: np.ndarray, start: int, stop: int, cols: int, screen: Int8Screen | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For rows ``start:stop`` of ``m``: the best cosine with any earlier row, and its index
    (-1 and -inf for row 0). Columns before ``start`` go in tiles of ``cols`` (screened
    first when ``screen`` is given); the square ``start:stop`` is exact, masked to earlier."""
    best = np.full(stop - start, -np.inf, dtype=np.float32)
    arg = np.full(stop - start, -1, dtype=np.int64)
    block, every = m[start:stop], np.arange(stop - start)
    step = cols if screen is None else min(cols, SCREEN_COLS)
    for c0 in range(0, start, step):
        c1 = min(c0 + step, start)
        rows = every if screen is None else screen.candidates(start, stop, c0, c1)
        if len(rows):
            _update(best, arg, rows, block[rows] @ m[c0:c1].T, c0)
    sims = block @ block.T
    sims[every[None, :] >= every[:, None]] = -np.inf  # only columns before each row count
    _update(best, arg, every, sims, start)
    return best, arg


def near_duplicates(
    vectors: Sequence[Sequence[float]] | np.ndarray,
    threshold: float,
    first: int = 0,
    rows: int = 1024,
    cols: int = 16384,
    fast: bool | None = None,
    threads: int | None = None,
    stats: dict | None = None,
) -> list[Duplicate]:
    """Items from index ``first`` on whose cosine with an earlier item is >= ``threshold``
    (items before ``first``, e.g. earlier versions, are compared against, never flagged).
    ``fast`` forces the int8 screen on or off (default: on from ``FAST_MIN`` items);
    ``threads`` are ONNX Runtime's for the screen (default: all cores); ``stats`` gets the
    screen's row-tiles screened and rescored, and its bound."""
    m = unit_rows(vectors)
    use = len(m) >= FAST_MIN if fast is None else fast
    screen = Int8Screen(m, threshold, threads) if use and len(m) > 1 else None
    out: list[Duplicate] = []
    for r0 in range(max(first, 1), len(m), rows):
        r1 = min(r0 + rows, len(m))
        best, arg = best_earlier(m, r0, r1, cols, screen)
        for k in np.nonzero(best >= threshold)[0]:
            out.append(Duplicate(r0 + int(k), int(arg[k]), round(float(best[k]), 4)))
    if stats is not None and screen is not None:
        stats |= {"screened": screen.pairs, "rescored": screen.kept, "bound": screen.bound}
    return out
