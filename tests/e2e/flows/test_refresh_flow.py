"""The nightly refresh flow end to end: real Prefect (ephemeral), embedded Qdrant, fastembed,
with one scripted LM (RuleLM, named as such) standing in for generator, agent and judge."""

from __future__ import annotations

import json
import time

import polars as pl

from flows.refresh import RefreshParams, nightly_refresh
from tests.helpers import (
    DEMO_CORPUS,
    RuleLM,
    demo_agent_rule,
    demo_generator_rule,
    plug_lms,
    tag_rule,
)


def scripted_rule(prompt: str) -> dict:
    """Scripted LM for every role: tags, agent/judge, else generator."""
    if "reasoning_types" in prompt or "overly_specific_question" in prompt:
        return tag_rule(prompt)
    if "trajectory" in prompt or "gold_answers" in prompt:
        return demo_agent_rule(prompt)
    return demo_generator_rule(prompt)


def test_second_refresh_embeds_only_new_passages_and_publishes_a_new_version(
    tmp_path, models_dir, monkeypatch
):
    lm = RuleLM(scripted_rule)
    plug_lms(monkeypatch, lm)
    monkeypatch.chdir(tmp_path)
    docs = DEMO_CORPUS.read_text().splitlines()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(docs[:70]) + "\n")
    kw = dict(dataset="demo", collection="c", n=2, steps="1", rounds=1, attempts=2,
              max_searches=2, generator_searches=1, keep_versions=1)  # fmt: skip
    first = nightly_refresh(RefreshParams(corpus=str(corpus), seed=1, **kw))
    assert first["previous"] is None and first["index"]["reused"] == 0
    v1 = first["version"]
    corpus.write_text("\n".join(docs) + "\n")  # 15 new documents
    time.sleep(1.1)  # versions are second-resolution timestamps
    second = nightly_refresh(RefreshParams(corpus=str(corpus), seed=1, **kw))
    idx = second["index"]
    new_ids = {json.loads(d)["id"] for d in docs[70:]}
    assert set(second["changed_documents"]) == new_ids
    assert idx["reused"] == first["index"]["passages"]  # every old passage was copied
    assert idx["embedded"] == idx["passages"] - idx["reused"] > 0
    # seeds prefer the new documents
    run_manifest = json.loads((tmp_path / second["run_dir"] / "manifest.json").read_text())
    planned = [s["doc_id"] for s in run_manifest["seeds"]]
    assert set(planned[: len(new_ids)]) <= new_ids
    # published: a second version, latest points at it, the first was pruned (keep 1)
    root = tmp_path / "datasets" / "demo"
    assert second["previous"] == v1 and second["pruned"] == [v1]
    assert (root / "latest").resolve() == (root / second["version"]).resolve()
    assert not (root / v1).exists()
    published = pl.read_parquet(root / "latest" / "dataset.parquet")
    # the scripted generator writes the same question every night: the second night's items
    # are near-duplicates of the first version's, and none is published again (#23)
    assert first["items"] >= 1 and published.height == second["items"] == 0
    flagged = pl.read_parquet(tmp_path / second["validation_dir"] / "validation.parquet")
    assert flagged.height >= 1 and flagged["flag_near_duplicate"].all()
    assert flagged["near_duplicate_of"].str.starts_with(f"{v1}:").all()
    man = json.loads((root / "latest" / "manifest.json").read_text())
    assert man["validation_dir"] and man["collection_version"] == second["collection_version"]
    # the published copy is the validation's filtered one (duplicates of a kept item removed)
    val = pl.read_parquet(tmp_path / second["validation_dir"] / "validation.parquet").filter(
        pl.col("keep")
    )
    assert sorted(published["id"]) == sorted(val["id"])
