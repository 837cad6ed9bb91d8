"""The near-duplicate search's int8 first pass against the exact float32 pass: the same
pairs on real MiniLM question vectors (fastembed), its error bound holding for every pair,
the threshold boundary, and the published versions' vectors cached per version."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from flows import guards
from modules.checks import dedup
from modules.checks.dedup_int8 import Int8Screen
from modules.index import embeddings
from tests.helpers import REPO

HOTPOT = REPO.parent / "shared" / "data" / "qa" / "hotpotqa_dev_250.jsonl"
OWN = [
    "Which lighthouse keeper on Skellis rescued the crew of the Marrow Gull in 1881?",
    "Who founded the harbour town of Brennick on the island of Tarvessa?",
    "What river flows past the birthplace of the painter of Grey Dunes?",
    "In which year did the salt war between Skellis and Port Caskel end?",
    "Which composer wrote the opera performed at the opening of the Ostra theatre?",
    "What is the name of the ship that carried the first settlers to Tarvessa?",
]
EDITS = [("Which", "What"), ("Who", "Which person"), ("film", "movie"), ("year", "decade")]


def questions() -> list[str]:
    """Real multi-hop questions (HotpotQA dev when the shared data is there) and edited
    copies of a third of them: real near-duplicates at a spread of cosines."""
    base = list(OWN)
    if HOTPOT.exists():
        base += [json.loads(x)["question_text"] for x in HOTPOT.read_text().splitlines()[:120]]
    out = list(base)
    for k, q in enumerate(base[::3]):
        a, b = EDITS[k % len(EDITS)]
        words = q.replace(a, b).rstrip("?").split()
        out.append(" ".join(words[: len(words) - k % 3]) + "?")  # 0-2 last words dropped
    return out


@pytest.fixture(scope="module")
def real_vectors(models_dir) -> np.ndarray:
    return dedup.unit_rows(embeddings.embed_dense(models_dir, questions()))


def pairs(found: list[dedup.Duplicate]) -> list[tuple[int, int, float]]:
    return [(d.index, d.of, d.cosine) for d in found]


@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.95])
def test_fast_pass_finds_the_exact_pairs_on_real_vectors(real_vectors, threshold):
    kw = {"rows": 16, "cols": 24, "first": 3}  # many screened tiles even on a small set
    exact = dedup.near_duplicates(real_vectors, threshold, fast=False, **kw)
    fast = dedup.near_duplicates(real_vectors, threshold, fast=True, **kw)
    assert len(exact) >= 5  # the edited copies are there to be found
    assert pairs(fast) == pairs(exact)


def test_int8_bound_holds_for_every_pair_and_screens_most_out(real_vectors):
    thr = 0.9
    screen = Int8Screen(real_vectors, thr)
    q = (screen.rows_u8.astype(np.int32) - 128) @ screen.cols_t.astype(np.int32)
    exact = real_vectors @ real_vectors.T
    assert np.all(np.abs(q / screen.scale**2 - exact) <= screen.bound)
    assert np.all(q[exact >= thr] >= screen.cut)  # no pair at the threshold is screened out
    half = len(real_vectors) // 2  # the later half's rows against the earlier half
    kept = screen.candidates(half, len(real_vectors), 0, half)
    high = np.nonzero((exact[half:, :half] >= thr).any(axis=1))[0]
    assert len(high) and set(high) <= set(kept)
    assert len(kept) < (len(real_vectors) - half) / 2  # the screen drops most rows
    assert screen.bound < 0.05


def planted(cos: float, n: int = 300, dim: int = 384, seed: int = 1) -> np.ndarray:
    """n random unit vectors; the last is at cosine ``cos`` (exactly, in float64) with #7."""
    rng = np.random.default_rng(seed)
    m = dedup.unit_rows(rng.normal(size=(n, dim)))
    e = m[7].astype(np.float64)
    r = rng.normal(size=dim)
    r -= (r @ e) * e
    r /= np.linalg.norm(r)
    m[-1] = cos * e + np.sqrt(1 - cos * cos) * r
    return m


@pytest.mark.parametrize("fast", [False, True])
def test_threshold_boundary(fast):
    thr, kw = 0.92, {"rows": 64, "cols": 50, "fast": fast}
    above = dedup.near_duplicates(planted(thr + 5e-4), thr, **kw)
    assert [(d.index, d.of) for d in above] == [(299, 7)]
    assert dedup.near_duplicates(planted(thr - 5e-4), thr, **kw) == []


def test_the_earliest_item_is_kept_in_a_group():
    m = planted(0.97)
    m[-2] = m[-1] * 0.999 + m[7] * 0.001  # a third member, closest to the last one
    found = dedup.near_duplicates(m, 0.92, rows=64, cols=50, fast=True)
    assert [(d.index, d.of) for d in found] == [(298, 7), (299, 298)]


def test_published_vectors_are_cached_per_version(models_dir, tmp_path, monkeypatch):
    """A nightly run embeds only the version published since the last run (the cache key
    was the whole set of versions, so every new version re-embedded all the older ones)."""
    settings = SimpleNamespace(data_dir=tmp_path / "data", models_dir=models_dir)
    embedded: list[str] = []
    real = guards.embed

    def counting(models, texts):
        embedded.extend(texts)
        return real(models, texts)

    monkeypatch.setattr(guards, "embed", counting)
    root = tmp_path / "datasets" / "qa"
    for k, name in enumerate(["20260101-000000", "20260102-000000"]):
        (root / name).mkdir(parents=True)
        rows = [{"id": f"r{k}:{j}", "question": q} for j, q in enumerate(OWN[k * 3 : k * 3 + 3])]
        pl.DataFrame(rows).write_parquet(root / name / "dataset.parquet")
        embedded.clear()
        ids, vecs = guards.published_items(settings, root)
        assert embedded == OWN[k * 3 : k * 3 + 3] and len(ids) == len(vecs) == 3 * (k + 1)
    embedded.clear()
    again_ids, again = guards.published_items(settings, root)
    assert embedded == [] and again_ids == ids and np.array_equal(again, vecs)
