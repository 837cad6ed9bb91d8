"""Resident memory of a process and its children, as the benchmarks sample it."""

from __future__ import annotations

import contextlib

import psutil


def tree_rss_mb(root: psutil.Process) -> float:
    """MB resident in ``root`` and all its children (processes that vanish count 0)."""
    rss = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss
    return rss / 2**20
