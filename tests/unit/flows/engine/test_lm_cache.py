"""DSPy's LM cache as sage configures it (real dspy.Cache, a temporary data dir)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import dspy
import psutil

from flows.engine.runtime import MEMORY_CACHE_ENTRIES, configure_lm_cache
from modules.settings import Settings


def test_the_memory_tier_of_the_lm_cache_is_bounded_and_the_disk_tier_is_kept(tmp_path):
    """A night's judge responses would fill DSPy's default 1,000,000-entry memory tier."""
    before = dspy.cache
    try:
        cache_dir = configure_lm_cache(Settings(data_dir=str(tmp_path)))
        assert dspy.cache.memory_cache.maxsize == MEMORY_CACHE_ENTRIES <= 10_000
        assert dspy.cache.enable_disk_cache and cache_dir == tmp_path / "lm_cache"
    finally:
        dspy.cache = before


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def test_the_disk_tier_read_from_many_threads_stays_small(tmp_path):
    """32 threads reading the disk tier (the seeds in flight, each asking the judge): DSPy's
    own 16-shard tier opened a SQLite connection per thread per shard, each with its page
    cache and a map of its file, and grew 273 MB reading a 6 MB cache; sage's holds ~20."""
    before = dspy.cache
    try:
        configure_lm_cache(Settings(data_dir=str(tmp_path)))
        disk = dspy.cache.disk_cache
        for i in range(3000):
            disk.set(f"k{i}", {"text": "x" * 2000})
        assert disk.get("k7") == {"text": "x" * 2000}

        def read(t: int) -> None:
            rng = random.Random(t)
            for _ in range(300):
                assert disk.get(f"k{rng.randrange(3000)}") is not None

        start = _rss_mb()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(read, range(32)))
            grown = _rss_mb() - start
        assert grown < 80, f"the disk tier grew {grown:.0f} MB over 32 threads"
    finally:
        dspy.cache = before
