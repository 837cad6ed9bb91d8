"""The validation's corpus-level guards: near-duplicates (within the run and against every
earlier published version of the dataset) and decontamination against eval sets.

Question vectors are MiniLM (the index's embedder). Those of files that never change (a
published version, an eval file) are cached under ``<data_dir>/cache/question_vectors/``
by the file's content hash, so a nightly refresh embeds only its new questions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from flows.runs.store import LATEST
from modules.checks import decontam, dedup
from modules.checks.eval_sets import EvalItem, eval_files
from modules.index import embeddings


def embed(models_dir: Path, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, embeddings.DENSE_DIM), dtype=np.float32)
    return np.asarray(embeddings.embed_dense(models_dir, texts), dtype=np.float32)


def cached_vectors(settings: Any, key_files: list[Path], texts: list[str]) -> np.ndarray:
    """Vectors of ``texts`` read from files ``key_files``, cached by their content hash."""
    h = hashlib.sha256()
    for f in key_files:
        h.update(f.read_bytes())
    h.update(str(len(texts)).encode())
    path = Path(settings.data_dir) / "cache" / "question_vectors" / f"{h.hexdigest()[:32]}.npy"
    if path.exists():
        vecs = np.load(path)
        if vecs.shape[0] == len(texts):
            return vecs
    vecs = embed(settings.models_dir, texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs


def versions(root: Path | None) -> list[tuple[str, Path]]:
    """(name, dataset.parquet) of every published version, oldest first."""
    if root is None or not Path(root).is_dir():
        return []
    dirs = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.is_symlink())
    files = [(v.name, v / "dataset.parquet") for v in dirs if v.name != LATEST]
    return [(name, f) for name, f in files if f.exists()]


def published_items(settings: Any, root: Path | None) -> tuple[list[str], np.ndarray]:
    """Ids (``<version>:<id>``) and question vectors of every published version, oldest
    first; an item repeated across versions is counted once (its first version). Each
    version's vectors are cached by that file's hash, so a nightly run embeds only the
    version published since the last one (the cache key is per file, not the whole set)."""
    ids, parts, seen = [], [], set()
    for name, f in versions(root):
        rows = pl.read_parquet(f, columns=["id", "question"])
        vecs = cached_vectors(settings, [f], rows["question"].to_list())
        keep = [k for k, i in enumerate(rows["id"].to_list()) if i not in seen]
        seen.update(rows["id"].to_list())
        ids += [f"{name}:{rows['id'][k]}" for k in keep]
        parts.append(vecs[keep])
    vectors = np.vstack(parts) if parts else embed(settings.models_dir, [])
    return ids, vectors


def near_duplicates(
    settings: Any, items: list[dict], vectors: np.ndarray, published: str | None, threshold: float
) -> dict[int, dict[str, Any]]:
    """{item index: {near_duplicate_of, duplicate_cosine}} against earlier items and
    versions (ids of published items are ``<version>:<id>``)."""
    pids, prior = published_items(settings, Path(published) if published else None)
    run_ids = {i["id"] for i in items}
    keep = [k for k, pid in enumerate(pids) if pid.split(":", 1)[1] not in run_ids]
    pids, prior = [pids[k] for k in keep], prior[keep]  # a run is not its own duplicate
    allv = np.vstack([prior, vectors]) if len(vectors) else prior
    names = pids + [i["id"] for i in items]
    out = {}
    for d in dedup.near_duplicates(allv, threshold, first=len(pids)):
        out[d.index - len(pids)] = {"near_duplicate_of": names[d.of], "duplicate_cosine": d.cosine}
    return out


def eval_vectors(settings: Any, against: list[str], evals: list[EvalItem]) -> np.ndarray:
    files = [f for a in against for f in eval_files(Path(a))]
    return cached_vectors(settings, files, [e.question for e in evals])


def contamination(
    settings: Any,
    items: list[dict],
    vectors: np.ndarray,
    against: list[str],
    evals: list[EvalItem],
    n: int,
    threshold: float,
) -> list[decontam.Match | None]:
    """One match (or None) per item against the eval items."""
    if not evals:
        return [None] * len(items)
    evecs = eval_vectors(settings, against, evals)
    return decontam.contamination(
        [i["question"] for i in items],
        [i["answer"] for i in items],
        evals,
        vectors,
        evecs,
        n=n,
        threshold=threshold,
    )
