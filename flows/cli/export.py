"""`sage export`: a run's verified items for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import JsonOpt, emit

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="hf (datasets + card) | searchr1 (RL parquet + reward.py) | sft (trajectories)",
    ),
]
DataSourceOpt = Annotated[
    str,
    typer.Option(
        help="data_source of every searchr1 row. Vanilla Search-R1 picks its reward by it and "
        "accepts nq, triviaqa, popqa, hotpotqa, 2wikimultihopqa, musique, bamboogle; with "
        "reward.py (verl custom_reward_function) any name works."
    ),
]
ValidatedOpt = Annotated[
    bool | None,
    typer.Option(
        "--validated/--unvalidated",
        help="Export the latest validation's filtered copy / the raw dataset. "
        "Default: the filtered copy when a validation exists.",
    ),
]
StyleOpt = Annotated[
    str, typer.Option(help="sft: searchr1 (Search-R1's tags) | tools (OpenAI tool calls)")
]
ToolArgumentsOpt = Annotated[
    str,
    typer.Option(
        help="sft --style tools: json (a JSON string, OpenAI's schema) | object (a dict, for "
        "chat templates that tojson the arguments, e.g. Qwen2.5)"
    ),
]
RewardOpt = Annotated[
    str,
    typer.Option(
        help="searchr1: reward.py scores by rule (exact match) | llm (then the judge model, "
        "from SAGE_JUDGE_API_BASE / SAGE_JUDGE_API_KEY / SAGE_JUDGE_LM)"
    ),
]
LicenseOpt = Annotated[
    str, typer.Option("--license", help="hf: the dataset card's licence (the corpus's).")
]
KeepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--keep",
        help="Keep the items of this validation flag (repeatable): single_passage, "
        "closed_book, contaminated, near_duplicate, leakage, ambiguous, reverify_failed, ...",
    ),
]
BandOpt = Annotated[
    str | None, typer.Option("--avg-at-k", help="Keep items whose Avg@K is in LO-HI (0.25-0.75).")
]
MinSearchesOpt = Annotated[
    int | None, typer.Option(help="Keep items whose fewest searches (right attempts) >= N.")
]
PushOpt = Annotated[
    str | None, typer.Option(help="hf: upload to this Hugging Face dataset repo ORG/NAME.")
]


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or runs/latest).")],
    fmt: FormatOpt = "hf",
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    data_source: DataSourceOpt = "nq",
    test_frac: Annotated[float, typer.Option(help="Share held out as the test split.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    validated: ValidatedOpt = None,
    style: StyleOpt = "searchr1",
    tool_arguments: ToolArgumentsOpt = "json",
    reward: RewardOpt = "rule",
    license_id: LicenseOpt = "other",
    push_to_hub: PushOpt = None,
    private: Annotated[bool, typer.Option(help="hf --push-to-hub: a private repo.")] = False,
    keep: KeepOpt = None,
    avg_at_k: BandOpt = None,
    min_searches: MinSearchesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's verified items: Hugging Face datasets, the Search-R1/verl RL layout
    with its reward function, or SFT conversations from the agent's trajectories."""
    from flows.runs.export import Filters, export_run, parse_band

    filters = Filters(tuple(keep or ()), parse_band(avg_at_k), min_searches)
    res = export_run(
        run_dir,
        fmt,
        out,
        data_source,
        test_frac,
        seed,
        validated,  # type: ignore[arg-type]
        style=style,
        tool_arguments=tool_arguments,
        reward=reward,  # type: ignore[arg-type]
        license_id=license_id,
        push_to_hub=push_to_hub,
        private=private,
        filters=filters,
    )
    lines = [
        f"{k}: {p}" + (f" ({res['counts'][k]} rows)" if k in res["counts"] else "")
        for k, p in res["paths"].items()
    ]
    lines += [f"removed by {k}: {n}" for k, n in res["removed"].items()]
    lines += [f"note: {n}" for n in res["notes"]]
    lines += [f"pushed: {res['url']}"] if res.get("url") else []
    emit(res, as_json, "\n".join([*lines, f"from {res['source']}"]))


def register(app: typer.Typer) -> None:
    """Add `export` to the sage CLI."""
    app.command("export")(export)
