"""index_corpus gives the C heap's free pages back after every embedded batch: resident
memory bounded by the batch, not by the number of batches (real fastembed, Qdrant Edge,
Prefect; the release itself is tested in tests/unit/modules/index/test_native_memory.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path):
    from modules.index import store
    from modules.settings import Settings

    s = Settings(data_dir=tmp_path / "data", models_dir=models_dir, collection="mem")
    yield s
    store.close_store(s.qdrant_location)


def test_each_embedded_batch_releases_native_memory(settings, tmp_path, monkeypatch) -> None:
    from flows import index

    words = "volcano river bread ferry choir harbour island lake capital salt".split()
    docs = [{"id": f"d{i}", "title": f"T{i}", "text": " ".join(words[: 3 + i % 8])} for i in range(7)]  # fmt: skip  # noqa: E501
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    calls = []
    real = index.embeddings.release_native_memory

    def release():  # the real release, its calls counted
        calls.append(1)
        return real()

    monkeypatch.setattr(index.embeddings, "release_native_memory", release)
    overrides = {k: str(getattr(settings, k)) for k in ("data_dir", "models_dir", "collection")}
    params = index.IndexParams(path=str(path), chunk_words=12, overlap_words=4, batch_size=3)
    out = index.index_corpus(params, overrides)
    assert out["embedded"] == 7
    assert len(calls) == 3  # batches of 3, 3 and 1
