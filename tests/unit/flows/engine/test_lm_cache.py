"""DSPy's LM cache as sage configures it (real dspy.Cache, a temporary data dir)."""

from __future__ import annotations

import dspy

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
