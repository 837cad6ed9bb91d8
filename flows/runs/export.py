"""Dataset exports: Hugging Face datasets, the Search-R1 / verl RL layout with its reward
function, and SFT conversations from the agent's verified trajectories.

Layouts (``<run>/export_<fmt>/`` by default):

- ``searchr1``: ``train.parquet`` [``test.parquet``] in Search-R1's RL layout
  (``flows/runs/searchr1_layout.py``) and ``reward.py``, a self-contained verl
  ``custom_reward_function`` (``flows/runs/reward_file.py``).
- ``sft``: ``train.parquet``/``.jsonl`` [``test.*``] with a ``messages`` column
  (``flows/runs/sft.py``).
- ``hf``: ``data/<split>.parquet``, ``dataset_dict/`` (``DatasetDict.save_to_disk``) and
  the dataset card ``README.md`` (``flows/runs/hf.py``).

Every format writes ``export.json`` (source, counts, options) and uses one seeded split.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from flows.runs.hf import DATASET_DICT, dataset_card, write_hf
from flows.runs.hf import push_to_hub as push_hf
from flows.runs.item_traces import TRACES, accepted_rounds, with_aliases
from flows.runs.reward_file import Reward, reward_source
from flows.runs.searchr1_layout import (  # noqa: F401 - re-exported
    PROMPT_EXAMPLE,
    SEARCH_R1_PROMPT,
    SEARCH_R1_SCHEMA,
    SEARCH_R1_SOURCES,
    searchr1_question,
    to_searchr1,
)
from flows.runs.sft import Style, ToolArguments, sft_row, sft_schema
from flows.runs.store import MANIFEST, latest_in, resolve_run_dir
from modules.errors import SageError

Format = Literal["hf", "searchr1", "sft"]
FORMATS = ("hf", "searchr1", "sft")


def training_items(run_dir: Path, validated: bool | None = None) -> tuple[pl.DataFrame, str]:
    """The items to train on and where they came from: the latest validation's filtered copy
    when one exists (unless ``validated`` is False), else the run's dataset. Items kept
    unverified (``--keep-unverified``) are never exported."""
    run_dir = resolve_run_dir(run_dir)
    latest = latest_in(run_dir / "validation")
    filtered = latest / "dataset.filtered.parquet" if latest else None
    if validated and (filtered is None or not filtered.exists()):
        raise SageError(f"{run_dir}: no validation with a filtered copy; run `sage validate`")
    if validated is not False and filtered is not None and filtered.exists():
        source = filtered
    else:
        source = run_dir / "dataset.parquet"
    if not source.exists():
        raise SageError(f"{source} is missing: the run has not been finalised (re-run it)")
    df = pl.read_parquet(source)
    if "verified" in df.columns:
        df = df.filter(pl.col("verified"))
    return df, str(source)


def split_frame(df: pl.DataFrame, test_frac: float, seed: int) -> dict[str, pl.DataFrame]:
    """A seeded train/test split by item (``test_frac`` 0 gives train only)."""
    if not 0 <= test_frac < 1:
        raise SageError(f"--test-frac {test_frac}: use 0 <= frac < 1")
    order = list(range(df.height))
    random.Random(seed).shuffle(order)
    n_test = round(df.height * test_frac)
    test = sorted(order[:n_test])
    train = sorted(order[n_test:])
    parts = {"train": df[train]}
    if test_frac > 0:
        parts["test"] = df[test]
    return parts


@dataclass
class ExportJob:
    """One export: where from, where to, and the options of every format."""

    run_dir: Path
    target: Path
    manifest: dict[str, Any]
    records: dict[str, dict]  # item id -> its accepted round in traces.jsonl
    data_source: str = "nq"
    style: Style = "searchr1"
    tool_arguments: ToolArguments = "json"
    reward: Reward = "rule"
    license_id: str = "other"
    source: str = ""
    notes: list[str] = field(default_factory=list)


def judge_setup(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run's judge model and guards, from its manifest (its resolved configuration,
    else its settings, else the judge's defaults)."""
    config, settings = manifest.get("config") or {}, manifest.get("settings") or {}
    recall = config.get("judge_min_gold_recall", settings.get("judge_min_gold_recall", 0.5))
    return {
        "judge_model": str((manifest.get("models") or {}).get("judge") or ""),
        "min_gold_recall": float(recall),
        "number_guard": bool(config.get("judge_number_guard", True)),
    }


Written = tuple[dict[str, str], dict[str, int]]  # paths and row counts by split


def _write_searchr1(job: ExportJob, parts: dict[str, pl.DataFrame]) -> Written:
    """Search-R1 RL parquet per split, and reward.py beside it."""
    paths, counts = {}, {}
    for split, part in parts.items():
        frame = to_searchr1(part, job.data_source, split)
        paths[split], counts[split] = str(job.target / f"{split}.parquet"), frame.height
        frame.write_parquet(paths[split])
    text = reward_source(job.reward, str(job.manifest.get("run_id", "")), PROMPT_EXAMPLE,
                         **judge_setup(job.manifest))  # fmt: skip
    (job.target / "reward.py").write_text(text)
    paths["reward"] = str(job.target / "reward.py")
    if job.data_source not in SEARCH_R1_SOURCES:
        job.notes.append(
            f"data_source {job.data_source!r} is not one vanilla Search-R1 accepts "
            f"({', '.join(SEARCH_R1_SOURCES)}): train with reward.py as verl's "
            "custom_reward_function"
        )
    return paths, counts


def _write_sft(job: ExportJob, parts: dict[str, pl.DataFrame]) -> Written:
    """SFT conversations per split, as parquet and JSON lines."""
    if not (job.run_dir / TRACES).exists():
        raise SageError(f"{job.run_dir / TRACES} is missing: the run has no trajectories")
    paths, counts, skipped = {}, {}, 0
    for split, part in parts.items():
        rows = []
        for item in part.iter_rows(named=True):
            row = sft_row(item, job.records.get(item["id"]), job.style, job.tool_arguments)
            skipped += row is None
            rows += [row] if row else []
        schema = sft_schema(job.style, job.tool_arguments)
        paths[split] = str(job.target / f"{split}.parquet")
        pl.DataFrame(rows, schema=schema).write_parquet(paths[split])
        with (job.target / f"{split}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        paths[f"{split}_jsonl"], counts[split] = str(job.target / f"{split}.jsonl"), len(rows)
    if not sum(counts.values()):
        raise SageError("no exported item has a correct, unforced attempt in traces.jsonl")
    if skipped:
        job.notes.append(f"{skipped} item(s) without a correct, unforced attempt left out")
    return paths, counts


def _write_hf(job: ExportJob, parts: dict[str, pl.DataFrame]) -> Written:
    """Parquet per split, the DatasetDict and the dataset card."""
    paths = write_hf(job.target, parts)
    metrics_path = job.run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    card = dataset_card(job.manifest, metrics, parts, job.license_id, job.source)
    (job.target / "README.md").write_text(card)
    paths["card"] = str(job.target / "README.md")
    paths["dataset_dict"] = str(job.target / DATASET_DICT)
    return paths, {split: part.height for split, part in parts.items()}


WRITERS = {"searchr1": _write_searchr1, "sft": _write_sft, "hf": _write_hf}


def _check(fmt: str, style: str, tool_arguments: str, reward: str, push: str | None) -> None:
    if fmt not in FORMATS:
        raise SageError(f"unknown export format {fmt!r} ({'|'.join(FORMATS)})")
    if style not in ("searchr1", "tools"):
        raise SageError(f"--style {style!r}: use searchr1 or tools")
    if tool_arguments not in ("json", "object"):
        raise SageError(f"--tool-arguments {tool_arguments!r}: use json or object")
    if reward not in ("rule", "llm"):
        raise SageError(f"--reward {reward!r}: use rule or llm")
    if push and fmt != "hf":
        raise SageError("--push-to-hub uploads an hf export: add --format hf")


def export_run(
    run_dir: Path,
    fmt: Format,
    out: Path | None = None,
    data_source: str = "nq",
    test_frac: float = 0.0,
    seed: int = 0,
    validated: bool | None = None,
    *,
    style: Style = "searchr1",
    tool_arguments: ToolArguments = "json",
    reward: Reward = "rule",
    license_id: str = "other",
    push_to_hub: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Export a run's training items as ``fmt`` into ``out`` (default
    ``<run>/export_<fmt>/``), split by ``test_frac`` and ``seed``; return the paths,
    counts, source and notes (and the dataset's URL after ``push_to_hub``)."""
    _check(fmt, style, tool_arguments, reward, push_to_hub)
    run_dir = resolve_run_dir(run_dir)
    df, source = training_items(run_dir, validated)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    records = accepted_rounds(run_dir, str(manifest.get("run_id", "")), df)
    parts = split_frame(with_aliases(df, records), test_frac, seed)
    target = Path(out) if out else run_dir / f"export_{fmt}"
    target.mkdir(parents=True, exist_ok=True)
    job = ExportJob(run_dir, target, manifest, records, data_source, style, tool_arguments,
                    reward, license_id, source)  # fmt: skip
    paths, counts = WRITERS[fmt](job, parts)
    meta = {"format": fmt, "source": source, "data_source": data_source,
            "test_frac": test_frac, "seed": seed, "counts": counts}  # fmt: skip
    meta |= {"style": style, "tool_arguments": tool_arguments} if fmt == "sft" else {}
    meta |= {"reward": reward} if fmt == "searchr1" else {}
    meta["notes"] = job.notes
    (target / "export.json").write_text(json.dumps(meta, indent=2))
    if push_to_hub:
        meta["url"] = push_hf(target, push_to_hub, private)
    return {"paths": paths, **meta}
