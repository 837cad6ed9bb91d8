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

from flows.runs.finalise import DATASET_SCHEMA
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
from modules.checks import flags
from modules.errors import SageError

Format = Literal["hf", "searchr1", "sft"]
FORMATS = ("hf", "searchr1", "sft")


@dataclass(frozen=True)
class Filters:
    """What export drops beyond the validation's flags: ``keep`` flags are not dropped;
    ``avg_at_k`` (lo, hi) and ``min_searches`` keep a band of measured difficulty."""

    keep: tuple[str, ...] = ()
    avg_at_k: tuple[float, float] | None = None
    min_searches: int | None = None


def parse_band(text: str | None) -> tuple[float, float] | None:
    """``--avg-at-k LO-HI`` (e.g. ``0.25-0.75``) as (lo, hi)."""
    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split("-", 1))
    except ValueError:
        raise SageError(f"--avg-at-k {text}: use LO-HI, e.g. 0.25-0.75") from None
    if not 0 <= lo <= hi <= 1:
        raise SageError(f"--avg-at-k {text}: use 0 <= LO <= HI <= 1")
    return lo, hi


def _flagged(run_dir: Path, vdir: Path, keep: tuple[str, ...]) -> tuple[pl.DataFrame, dict]:
    """The run's items that the validation in ``vdir`` checked, less those with a dropped
    flag (the validation's drop list less ``keep``); how many each flag removed."""
    flags.check_keep(keep)
    summary = json.loads((vdir / "validation.json").read_text())
    dropped = [f for f in summary.get("drops") or flags.drops() if f not in keep]
    df = pl.read_parquet(run_dir / "dataset.parquet")
    df = df.select([c for c in DATASET_SCHEMA if c in df.columns])
    cols = [flags.column(f) for f in flags.FLAGS]
    v = pl.read_parquet(vdir / "validation.parquet").select(["id", *cols])
    df = df.join(v, on="id", how="inner")
    removed = {f: int(df[flags.column(f)].fill_null(False).sum()) for f in dropped}
    gone = pl.any_horizontal([pl.col(flags.column(f)).fill_null(False) for f in dropped])
    return df.filter(~gone if dropped else pl.lit(True)).drop(cols), removed


def _banded(df: pl.DataFrame, filters: Filters, removed: dict[str, int]) -> pl.DataFrame:
    if filters.avg_at_k is not None:
        lo, hi = filters.avg_at_k
        inside = df.filter(pl.col("avg_at_k").is_between(lo, hi))
        removed["avg_at_k"], df = df.height - inside.height, inside
    if filters.min_searches is not None:
        inside = df.filter(pl.col("min_searches") >= filters.min_searches)
        removed["min_searches"], df = df.height - inside.height, inside
    return df


def training_items(
    run_dir: Path, validated: bool | None = None, filters: Filters | None = None
) -> tuple[pl.DataFrame, str, dict[str, int]]:
    """The items to train on, where they came from, and how many each filter removed.

    With a validation (unless ``validated`` is False): the run's items it checked, less
    those with a flag it drops (``filters.keep`` keeps a flag's items); an older validation
    without flag columns gives its filtered copy. Else the run's dataset. Then the
    difficulty bands. Items kept unverified (``--keep-unverified``) are never exported."""
    filters = filters or Filters()
    run_dir = resolve_run_dir(run_dir)
    latest = latest_in(run_dir / "validation")
    filtered = latest / "dataset.filtered.parquet" if latest else None
    if validated and (filtered is None or not filtered.exists()):
        raise SageError(f"{run_dir}: no validation with a filtered copy; run `sage validate`")
    removed: dict[str, int] = {}
    use = validated is not False and filtered is not None and filtered.exists()
    if use and (latest / "validation.parquet").exists():
        df, removed = _flagged(run_dir, latest, filters.keep)
        source = f"{run_dir / 'dataset.parquet'} with the flags of {latest.resolve()}"
    else:
        source = str(filtered if use else run_dir / "dataset.parquet")
        if not Path(source).exists():
            raise SageError(f"{source} is missing: the run has not been finalised (re-run it)")
        df = pl.read_parquet(source)
        df = df.select([c for c in DATASET_SCHEMA if c in df.columns])
    if "verified" in df.columns:
        df = df.filter(pl.col("verified"))
    return _banded(df, filters, removed), source, removed


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
    text = reward_source(
        job.reward, str(job.manifest.get("run_id", "")), PROMPT_EXAMPLE, **judge_setup(job.manifest)
    )
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
    filters: Filters | None = None,
) -> dict[str, Any]:
    """Export a run's training items as ``fmt`` into ``out`` (default
    ``<run>/export_<fmt>/``), split by ``test_frac`` and ``seed``, less what the
    validation's flags and ``filters`` remove; return the paths, counts, removed, source and
    notes (and the dataset's URL after ``push_to_hub``)."""
    _check(fmt, style, tool_arguments, reward, push_to_hub)
    run_dir = resolve_run_dir(run_dir)
    df, source, removed = training_items(run_dir, validated, filters)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    records = accepted_rounds(run_dir, str(manifest.get("run_id", "")), df)
    parts = split_frame(with_aliases(df, records), test_frac, seed)
    target = Path(out) if out else run_dir / f"export_{fmt}"
    target.mkdir(parents=True, exist_ok=True)
    job = ExportJob(
        run_dir,
        target,
        manifest,
        records,
        data_source,
        style,
        tool_arguments,
        reward,
        license_id,
        source,
    )
    paths, counts = WRITERS[fmt](job, parts)
    meta = {
        "format": fmt,
        "source": source,
        "data_source": data_source,
        "test_frac": test_frac,
        "seed": seed,
        "counts": counts,
        "removed": removed,
    }
    meta |= {"style": style, "tool_arguments": tool_arguments} if fmt == "sft" else {}
    meta |= {"reward": reward} if fmt == "searchr1" else {}
    meta["notes"] = job.notes
    (target / "export.json").write_text(json.dumps(meta, indent=2))
    if push_to_hub:
        meta["url"] = push_hf(target, push_to_hub, private)
    return {"paths": paths, **meta}
