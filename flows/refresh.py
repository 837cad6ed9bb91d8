"""The nightly dataset refresh: re-index -> generate (new documents first) -> validate ->
publish ``datasets/<name>/<version>/`` with a ``latest`` pointer, keeping the last N."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import field_validator

from flows.engine.artifacts import artifact_key
from flows.engine.params import (
    Against,
    Attempts,
    Collection,
    FlowParams,
    GeneratorSearches,
    MaxSearches,
    Rounds,
    Steps,
    Tag,
    argument,
    option,
)
from flows.generate import GenerateParams, generate_dataset
from flows.index import IndexParams, index_corpus
from flows.runs.manifest import run_manifest
from flows.runs.store import LATEST, RunStore, new_run_id
from flows.validate import ValidateParams, validate_run
from modules.errors import SageError
from modules.settings import Settings, load_settings

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


class RefreshParams(FlowParams):
    """What `sage refresh` (the nightly job) takes."""

    SHARES: ClassVar[tuple[str, ...]] = (
        "n",
        "steps",
        "rounds",
        "attempts",
        "max_searches",
        "generator_searches",
    )

    corpus: str = argument("Corpus file or directory to re-index.")
    dataset: str = option("default", "Published dataset name.")
    collection: Collection = option(None, "Collection [SAGE_COLLECTION].")
    n: int = option(20, "Accepted items wanted.", flag="--n", ge=1)
    steps: Steps = "2-4"
    rounds: Rounds = 2
    attempts: Attempts = option(4, "Attempts K.")
    max_searches: MaxSearches = 10
    generator_searches: GeneratorSearches = 20
    validate_run: bool = option(
        True, "Validate; publish the filtered copy.", flag="--validate/--no-validate"
    )
    validate_attempts: int | None = option(None, "Validation attempts (default: K).", ge=1)
    tag: Tag = option(True, "LLM-tag failure causes in the validation.")
    against: Against = []
    keep_versions: int = option(7, "Published versions kept.", ge=1)
    datasets_dir: str = option("datasets", "Where datasets are published.")
    seed: int | None = option(None, "Seed of the generation (default: from the time).")

    @field_validator("dataset")
    @classmethod
    def _name(cls, v: str) -> str:
        if "/" in v or v in ("", ".", "..", LATEST):
            raise SageError(f"invalid dataset name {v!r}")
        return v


@flow(name="nightly-refresh", log_prints=True)
def nightly_refresh(
    params: RefreshParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Refresh a published dataset from the current state of the corpus."""
    p, overrides = params, dict(settings_overrides or {})
    settings = load_settings(**overrides)
    name = p.collection or settings.collection
    stamp = new_run_id()
    idx = index_corpus(IndexParams(path=p.corpus, collection=name), overrides)
    changed = idx["changed_docs"]
    get_run_logger().info(
        "index %s: %d embedded, %d changed documents", idx["version"], idx["embedded"], len(changed)
    )
    gen = generate_dataset(
        GenerateParams.of(
            p,
            collection=name,
            run_id=f"refresh-{p.dataset}-{stamp}",
            prefer_docs=changed or None,
            seed=p.seed if p.seed is not None else int(stamp.replace("-", "")) % 2**31,
        ),
        overrides,
    )
    run_dir, val = Path(gen["run_dir"]), None
    files = {f: run_dir / f for f in PUBLISHED}
    if p.validate_run:
        val = validate_run(
            ValidateParams(
                run_dir=str(run_dir),
                attempts=p.validate_attempts,
                tag=p.tag,
                max_searches=p.max_searches,
                validation_id=stamp,
                against=p.against,
                published=str(Path(p.datasets_dir) / p.dataset),
            ),
            overrides,
        )
        vdir = Path(val["validation_dir"])  # publish the filtered copy
        files = {f: vdir / f.replace("dataset.", "dataset.filtered.") for f in PUBLISHED}
    summary = publish_version(p, settings, stamp, files, idx, run_dir, val)
    summary |= {"accepted": gen["accepted"]}
    create_markdown_artifact(
        key=artifact_key("sage", "refresh", p.dataset),
        markdown=refresh_markdown(summary, val),
        description=f"nightly refresh of dataset {p.dataset}",
    )
    return summary


def publish_version(
    p: RefreshParams,
    settings: Settings,
    stamp: str,
    files: dict[str, Path],
    idx: dict,
    run_dir: Path,
    val: dict | None,
) -> dict[str, Any]:
    """Publish ``files`` as datasets/NAME/STAMP with its manifest; prune old versions."""
    root = Path(p.datasets_dir) / p.dataset
    prev = versions(root)
    prev_q = _questions(root / prev[-1] / "dataset.jsonl") if prev else set()
    manifest = run_manifest(
        "refresh",
        stamp,
        p,
        settings,
        dataset=p.dataset,
        version=stamp,
        previous=prev[-1] if prev else None,
        corpus=str(p.corpus),
        collection_version=idx["version"],
        index={k: idx[k] for k in ("embedded", "reused", "deleted", "documents", "passages")},
        changed_documents=idx["changed_docs"],
        run_dir=str(run_dir),
        validation_dir=val["validation_dir"] if val else None,
    )
    out, pruned = publish(root, stamp, files, manifest, p.keep_versions)
    return manifest | {
        "path": str(out.resolve()),
        "items": _count(out / "dataset.jsonl"),
        "new_items": len(_questions(out / "dataset.jsonl") - prev_q),
        "pruned": pruned,
    }


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
