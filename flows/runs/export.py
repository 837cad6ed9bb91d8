"""Dataset exports: HF-datasets parquet and the Search-R1 / verl RL parquet layout.

The Search-R1 rows are what its trainer reads (``scripts/data_process/nq_search.py`` and the
SAGE code's ``create_training_data.py``): the base prompt template verbatim, the question
stripped with "?" appended, ``golden_answers`` and ``reward_model.ground_truth.target``.
Vanilla Search-R1 picks its reward function by ``data_source`` (``qa_em`` for nq, hotpotqa,
musique, ...), so pass one of those names with ``--data-source`` or register yours there.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

import polars as pl

from flows.runs.store import latest_in, resolve_run_dir
from modules.errors import SageError

# Search-R1's "base" template, verbatim (its typo "as your want" included).
SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first "
    "every time you get new information. After reasoning, if you find you lack some "
    "knowledge, you can call a search engine by <search> query </search> and it will return "
    "the top searched results between <information> and </information>. You can search as "
    "many times as your want. If you find no further external knowledge needed, you can "
    "directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)

Format = Literal["hf", "searchr1"]

SEARCH_R1_SCHEMA = {
    "id": pl.String(),
    "question": pl.String(),
    "golden_answers": pl.List(pl.String()),
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
            "target_steps": pl.Int64(),
            "min_searches": pl.Int64(),
            "answer_type": pl.String(),
            "relaxed": pl.Boolean(),
        }
    ),
}


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


def searchr1_question(question: str) -> str:
    q = str(question).strip()
    return q if q.endswith("?") else q + "?"


def to_searchr1(df: pl.DataFrame, data_source: str, split: str) -> pl.DataFrame:
    """One row per item in the layout Search-R1's PPO trainer reads."""
    rows = []
    for i, r in enumerate(df.iter_rows(named=True)):
        q = searchr1_question(r["question"])
        golds = [r["answer"], *(r.get("aliases") or [])]
        rows.append(
            {
                "id": r["id"],
                "question": q,
                "golden_answers": golds,
                "data_source": data_source,
                "prompt": [{"role": "user", "content": SEARCH_R1_PROMPT.format(question=q)}],
                "ability": "fact-reasoning",
                "reward_model": {"style": "rule", "ground_truth": {"target": golds}},
                "extra_info": {
                    "split": split,
                    "index": i,
                    "target_steps": r.get("target_steps"),
                    "min_searches": r.get("min_searches"),
                    "answer_type": r.get("answer_type"),
                    "relaxed": bool(r.get("relaxed")),
                },
            }
        )
    return pl.DataFrame(rows, schema=SEARCH_R1_SCHEMA)


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


def export_run(
    run_dir: Path,
    fmt: Format,
    out: Path | None = None,
    data_source: str = "sage",
    test_frac: float = 0.0,
    seed: int = 0,
    validated: bool | None = None,
) -> dict[str, Any]:
    """Write ``train.parquet`` (and ``test.parquet`` with ``test_frac``) into ``out`` (default
    ``<run>/export_<fmt>/``); return the paths, counts and source."""
    if fmt not in ("hf", "searchr1"):
        raise SageError(f"unknown export format {fmt!r} (hf|searchr1)")
    run_dir = resolve_run_dir(run_dir)
    df, source = training_items(run_dir, validated)
    target = Path(out) if out else run_dir / f"export_{fmt}"
    target.mkdir(parents=True, exist_ok=True)
    paths, counts = {}, {}
    for split, part in split_frame(df, test_frac, seed).items():
        frame = to_searchr1(part, data_source, split) if fmt == "searchr1" else part
        path = target / f"{split}.parquet"
        frame.write_parquet(path)
        paths[split], counts[split] = str(path), frame.height
    meta = {"format": fmt, "source": source, "data_source": data_source,
            "test_frac": test_frac, "seed": seed, "counts": counts}  # fmt: skip
    (target / "export.json").write_text(json.dumps(meta, indent=2))
    return {"paths": paths, **meta}
