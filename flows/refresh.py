"""The nightly dataset refresh: re-index -> generate (new documents first) -> validate ->
publish ``datasets/<name>/<version>/`` with a ``latest`` pointer, keeping the last N."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.generate import generate_dataset
from flows.index import index_corpus
from flows.run_store import LATEST, RunStore
from flows.validate import validate_run
from modules.errors import SageError
from modules.settings import load_settings

PUBLISHED = ("dataset.parquet", "dataset.jsonl")


def versions(root: Path) -> list[str]:
    """Published versions of a dataset, oldest first."""
    if not root.exists():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name != LATEST
    )


def publish(
    root: Path, version: str, files: dict[str, Path], manifest: dict[str, Any], keep: int
) -> tuple[Path, list[str]]:
    """Copy ``files`` ({published name: source}) into ``root/version`` (atomically), point
    ``latest`` at it and prune all but the newest ``keep`` versions."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise SageError(f"{final} exists: dataset versions are never overwritten")
    tmp = root / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, src in files.items():
        shutil.copy2(src, tmp / name)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    tmp.rename(final)
    RunStore(root, version).mark_latest()
    pruned = versions(root)[:-keep] if keep > 0 else []
    for old in pruned:
        shutil.rmtree(root / old)
    return final, pruned


def _count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def _questions(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(x)["question"] for x in path.read_text().splitlines() if x.strip()}


@flow(name="nightly-refresh", log_prints=True, validate_parameters=False)
def nightly_refresh(
    corpus: str,
    dataset: str = "default",
    collection: str | None = None,
    n: int = 20,
    steps: str = "2-4",
    rounds: int = 2,
    attempts: int = 4,
    max_searches: int = 10,
    generator_searches: int = 20,
    validate: bool = True,
    validate_attempts: int | None = None,
    tag: bool = True,
    keep_versions: int = 7,
    datasets_dir: str = "datasets",
    seed: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Refresh a published dataset from the current state of ``corpus``."""
    if "/" in dataset or dataset in ("", ".", "..", LATEST):
        raise SageError(f"invalid dataset name {dataset!r}")
    logger = get_run_logger()
    settings = load_settings(**(settings_overrides or {}))
    name = collection or settings.collection
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    idx = index_corpus(corpus, collection=name, settings=settings)
    changed = idx["changed_docs"]
    logger.info("index %s: %d embedded, %d changed documents", idx["version"], idx["embedded"],
                len(changed))  # fmt: skip
    run_seed = seed if seed is not None else int(stamp.replace("-", "")) % 2**31
    gen = generate_dataset(
        collection=name, n=n, steps=steps, rounds=rounds, attempts=attempts, seed=run_seed,
        run_id=f"refresh-{dataset}-{stamp}", max_searches=max_searches,
        generator_searches=generator_searches, prefer_docs=changed or None,
        settings_overrides=settings_overrides,
    )  # fmt: skip
    run_dir = Path(gen["run_dir"])
    files = {name: run_dir / name for name in PUBLISHED}
    val = None
    if validate:
        val = validate_run(
            str(run_dir), attempts=validate_attempts, tag=tag, max_searches=max_searches,
            validation_id=stamp, settings_overrides=settings_overrides,
        )  # fmt: skip
        vdir = Path(val["validation_dir"])  # publish the filtered copy
        files = {name: vdir / name.replace("dataset.", "dataset.filtered.") for name in PUBLISHED}
    root = Path(datasets_dir) / dataset
    prev = versions(root)
    prev_q = _questions(root / prev[-1] / "dataset.jsonl") if prev else set()
    manifest = {
        "dataset": dataset,
        "version": stamp,
        "previous": prev[-1] if prev else None,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "corpus": str(corpus),
        "collection_version": idx["version"],
        "index": {k: idx[k] for k in ("embedded", "reused", "deleted", "documents", "passages")},
        "changed_documents": changed,
        "run_dir": str(run_dir),
        "validation_dir": val["validation_dir"] if val else None,
    }
    out, pruned = publish(root, stamp, files, manifest, keep_versions)
    items = _count(out / "dataset.jsonl")
    new_items = len(_questions(out / "dataset.jsonl") - prev_q)
    summary = manifest | {"path": str(out.resolve()), "items": items, "new_items": new_items,
                          "pruned": pruned, "accepted": gen["accepted"]}  # fmt: skip
    create_markdown_artifact(
        key="refresh-" + hashlib.sha1(dataset.encode()).hexdigest()[:10],
        markdown=refresh_markdown(summary, val),
        description=f"nightly refresh of dataset {dataset}",
    )
    return summary


def refresh_markdown(s: dict[str, Any], val: dict[str, Any] | None) -> str:
    idx = s["index"]
    lines = [
        f"# dataset `{s['dataset']}` version `{s['version']}`",
        "",
        f"- corpus: {idx['documents']} documents, {idx['passages']} passages; "
        f"{idx['embedded']} passages embedded, {idx['reused']} reused, {idx['deleted']} removed; "
        f"{len(s['changed_documents'])} new or changed documents",
        f"- generation: {s['accepted']} accepted items (run `{Path(s['run_dir']).name}`)",
    ]
    if val:
        flags = ", ".join(f"{k} {v}" for k, v in val["flags"].items())
        lines.append(f"- validation: {val['kept']} of {val['items']} kept; flagged: {flags}")
    lines += [
        f"- published: {s['items']} items, {s['new_items']} not in the previous version "
        f"(`{s['previous']}`)",
        f"- pruned versions: {', '.join(s['pruned']) or 'none'}",
    ]
    return "\n".join(lines) + "\n"
