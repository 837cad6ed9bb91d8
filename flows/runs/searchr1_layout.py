"""Search-R1's data layout: its prompt, question form, passage rendering and RL rows.

The rows are what its trainer reads (``scripts/data_process/nq_search.py`` and the SAGE
code's ``create_training_data.py``): the base prompt template verbatim, the question
stripped with "?" appended, ``golden_answers`` and ``reward_model.ground_truth.target``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

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
# The prompt's example answer, which a reward must not mistake for the model's.
PROMPT_EXAMPLE = SEARCH_R1_PROMPT[
    SEARCH_R1_PROMPT.index("For example") : SEARCH_R1_PROMPT.index(" Question:")
]
# data_source values vanilla Search-R1's _select_rm_score_fn (verl/trainer/main_ppo.py)
# accepts; any other raises NotImplementedError at its first reward call.
SEARCH_R1_SOURCES = (
    "nq",
    "triviaqa",
    "popqa",
    "hotpotqa",
    "2wikimultihopqa",
    "musique",
    "bamboogle",
)

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
            "question": pl.String(),
            "target_steps": pl.Int64(),
            "min_searches": pl.Int64(),
            "answer_type": pl.String(),
            "relaxed": pl.Boolean(),
        }
    ),
}


def searchr1_question(question: str) -> str:
    """The question as Search-R1's data scripts write it: stripped, "?" appended."""
    q = str(question).strip()
    return q if q.endswith("?") else q + "?"


def golds_of(row: dict[str, Any]) -> list[str]:
    """The gold answer first, then its aliases."""
    return [row["answer"], *(row.get("aliases") or [])]


def render_passages(passages: list[dict[str, Any]]) -> str:
    """Retrieved passages as Search-R1's ``_passages2string`` shows them to the model."""
    return "".join(
        f"Doc {i}(Title: {p.get('title', '')}) {p.get('text', '')}\n"
        for i, p in enumerate(passages, start=1)
    ).strip()


def to_searchr1(df: pl.DataFrame, data_source: str, split: str) -> pl.DataFrame:
    """One row per item in the layout Search-R1's PPO trainer reads."""
    rows = []
    for i, r in enumerate(df.iter_rows(named=True)):
        q = searchr1_question(r["question"])
        golds = golds_of(r)
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
                    "question": q,
                    "target_steps": r.get("target_steps"),
                    "min_searches": r.get("min_searches"),
                    "answer_type": r.get("answer_type"),
                    "relaxed": bool(r.get("relaxed")),
                },
            }
        )
    return pl.DataFrame(rows, schema=SEARCH_R1_SCHEMA)
