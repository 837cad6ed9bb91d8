"""report.md with PNG plots for a run (pass rate and searches by round and by target S)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.reports.plots import pyplot
from flows.reports.tables import FUNNEL_COLS, METRIC_COLS, md_table


def _plot_rounds(metrics: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    rows = metrics["per_round"]
    xs = [r["round"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(xs, [r["pct_correct"] or 0 for r in rows], marker="o", label="% correct (pass@K)")
    a.plot(xs, [r["pct_pass"] or 0 for r in rows], marker="s", label="% pass (correct and >= S)")
    a.set_xlabel("feedback rounds")
    a.set_ylabel("% of seeds")
    a.set_ylim(0, 100)
    a.set_xticks(xs)
    a.legend(fontsize=8)
    b.plot(xs, [r["mean_min_searches"] or 0 for r in rows], marker="o", color="tab:green")
    b.set_xlabel("feedback rounds")
    b.set_ylabel("mean searches (correct attempts)")
    b.set_xticks(xs)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_steps(metrics: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    rows = metrics["per_target_steps"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    xs = [r["target_steps"] or 0 for r in rows]  # 0: no target (--steps any)
    ax.bar([x - 0.2 for x in xs], [r["pct_correct"] or 0 for r in rows], 0.4, label="% correct")
    ax.bar([x + 0.2 for x in xs], [r["pct_pass"] or 0 for r in rows], 0.4, label="% pass")
    ax.set_xlabel("target searches S")
    ax.set_ylabel("% of seeds")
    ax.set_ylim(0, 100)
    ax.set_xticks(xs)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def validation_funnel(run_dir: Path) -> str:
    """The latest validation's funnel: every flag's count and what export keeps."""
    path = run_dir / "validation" / "latest" / "validation.json"
    if not path.exists():
        return ""
    v = json.loads(path.read_text())
    counts = ", ".join(f"{k} {n}" for k, n in v["flags"].items())
    drops = ", ".join(v.get("drops") or [])
    return (
        f"\nValidation `{path.resolve().parent.name}`: {v['items']} items -> flagged: {counts} "
        f"-> {v['kept']} kept (export drops {drops or 'nothing'} unless `--keep FLAG`)\n"
    )


def write_report(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write report.md and its plots into run_dir."""
    _plot_rounds(metrics, run_dir / "plot_rounds.png")
    _plot_steps(metrics, run_dir / "plot_target_steps.png")
    p = manifest["params"]
    cols = METRIC_COLS
    funnel = metrics["funnel"]
    cost = metrics["cost"]
    text = f"""# sage run `{manifest["run_id"]}`

collection `{p["collection"]}` ({manifest.get("collection_version", "?")}), strategy
`{p["strategy"]}`, K={p["attempts"]} attempts, R={p["rounds"]} rounds, target S {p["steps"]}.
Generator `{manifest["models"]["generator"]}`, agent `{manifest["models"]["agent"]}`,
judge `{manifest["models"]["judge"]}`; profile `{manifest.get("config", {}).get("profile", "?")}`.

## By round

{md_table(metrics["per_round"], ["round", *cols])}
![by round](plot_rounds.png)

## By target searches S (after the last round)

{md_table(metrics["per_target_steps"], ["target_steps", *cols])}
![by S](plot_target_steps.png)

## Funnel

seeds {funnel["seeds"]} -> generated {funnel["generated"]} -> ever correct
{funnel["ever_correct"]} -> accepted {funnel["accepted"]}; rounds whose generation failed:
{funnel.get("generation_failed", 0)}
{validation_funnel(run_dir)}
{md_table(funnel["per_round"], FUNNEL_COLS)}
## Cost

{cost["lm_calls"]} LM calls, {cost["tokens"]} tokens, {cost["seconds"]} s of model work;
per accepted item: {cost["lm_calls_per_accepted"]} calls, {cost["tokens_per_accepted"]} tokens.
Retrieved text in prompts: {cost.get("retrieved_chars_shown")} characters shown,
{cost.get("retrieved_chars_cut")} cut (share shown {cost.get("shown_share")}).
"""
    out = run_dir / "report.md"
    out.write_text(text)
    return out
