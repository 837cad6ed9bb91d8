"""Dataset exports: HF-datasets parquet and the Search-R1 / verl RL parquet layout."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from flows.run_store import resolve_run_dir
from modules.errors import SageError

SEARCH_R1_PROMPT = (
    "Answer the given question. Reason inside <think> and </think> every time you get new "
    "information. If you lack knowledge, call a search engine with <search> query </search>; "
    "results come back between <information> and </information>. Search as often as you "
    "need. When no more knowledge is needed, give the short answer inside <answer> and "
    "</answer> without explanation, for example <answer> Beijing </answer>. "
    "Question: {question}\n"
)

Format = Literal["hf", "searchr1"]

SEARCH_R1_SCHEMA = {
    "data_source": pl.String(),
    "prompt": pl.List(pl.Struct({"role": pl.String(), "content": pl.String()})),
    "ability": pl.String(),
    "reward_model": pl.Struct(
        {"style": pl.String(), "ground_truth": pl.Struct({"target": pl.List(pl.String())})}
    ),
    "extra_info": pl.Struct(
        {
            "split": pl.String(),
            "index": pl.Int64(),
            "id": pl.String(),
            "target_steps": pl.Int64(),
            "min_searches": pl.Int64(),
            "question": pl.String(),
        }
    ),
}


def load_dataset(run_dir: Path) -> pl.DataFrame:
    p = resolve_run_dir(run_dir) / "dataset.parquet"
    if not p.exists():
        raise SageError(f"{p} is missing: the run has not been finalised (re-run to resume)")
    return pl.read_parquet(p)


def to_searchr1(df: pl.DataFrame, data_source: str, split: str = "train") -> pl.DataFrame:
    """One row per item: data_source, prompt (chat list), ability, reward_model, extra_info."""
    rows = []
    for i, r in enumerate(df.iter_rows(named=True)):
        rows.append(
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": SEARCH_R1_PROMPT.format(**r)}],
                "ability": "fact-reasoning",
                "reward_model": {"style": "rule", "ground_truth": {"target": [r["answer"]]}},
                "extra_info": {
                    "split": split,
                    "index": i,
                    "id": r["id"],
                    "target_steps": r["target_steps"],
                    "min_searches": r["min_searches"],
                    "question": r["question"],
                },
            }
        )
    return pl.DataFrame(rows, schema=SEARCH_R1_SCHEMA)


def export_run(run_dir: Path, fmt: Format, out: Path | None = None) -> Path:
    """Write the export next to the run (or to `out`) and return its path."""
    run_dir = resolve_run_dir(run_dir)
    df = load_dataset(run_dir)
    if fmt == "hf":
        target = out or run_dir / "export_hf" / "train.parquet"
        frame = df
    elif fmt == "searchr1":
        target = out or run_dir / "export_searchr1" / "train.parquet"
        frame = to_searchr1(df, data_source=f"sage/{run_dir.name}")
    else:
        raise SageError(f"unknown export format {fmt!r} (hf|searchr1)")
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(target)
    return target
