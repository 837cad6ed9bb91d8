"""The experiment's outputs under runs/<id>/experiment/: table.json, table.csv, table.md (the
paper's numbers beside the measured ones), plot_experiment.png and report.html."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup

from flows.reports.experiment_table import NO_TARGET
from flows.reports.plots import pyplot
from flows.reports.tables import cells, md_table
from flows.runs.store import RunStore

PAPER_MODEL = "Gemini 2.5 Flash, K=4"
# The SAGE paper's intrinsic table (% correct, % pass, Avg@4, #search), as quoted in issue 22
# from a secondary source: by (arm, round); the no-target row is the generator without S.
PAPER: dict[tuple[str, int], tuple[float, float | None, float, float]] = {
    (NO_TARGET, 0): (84, None, 86.3, 3.2),
    ("round0", 0): (71, 18, 87.4, 3.3),
    ("resample", 1): (77, 27, 84.5, 3.8),
    ("resample", 2): (81, 38, 80.3, 4.3),
    ("resample", 3): (84, 47, 80.1, 4.8),
    ("feedback", 1): (77, 31, 83.2, 4.1),
    ("feedback", 2): (83, 42, 80.4, 4.6),
    ("feedback", 3): (87, 50, 79.5, 4.9),
}
PAPER_COL = f"paper ({PAPER_MODEL}): %c / %p / Avg@4 / #s"
COLS = [
    "row",
    "n",
    "% correct [95% CI]",
    "% pass [95% CI]",
    "Avg@K",
    "Avg@K (correct)",
    "#search",
    "LM calls/seed",
    "tokens/seed",
    PAPER_COL,
]
PAIRED_COLS = ["round", "n", "metric", "feedback − resample [95% CI]"]
DEFINITIONS = """\
How the columns are defined, and where sage's may differ from the paper's. No script in the
official SAGE code computes the paper's columns; its `aggregate_bon_results` keeps per item
`best_of_n` (1 if any of the K rollouts is judged correct), `avg_of_n` (the fraction of the K
rollouts judged correct), `best_n_search_steps` (the fewest searches among correct rollouts;
with none correct, a random rollout's count) and `pass_check` (`best_of_n` = 1 and
`best_n_search_steps` >= S). The readings below are our inference from those fields.

- **% correct**: seeds whose pair some attempt answered right (pass@K): the mean of `best_of_n`.
- **% pass**: seeds accepted (pass@K and the fewest searches among right attempts >= S): the
  mean of `pass_check`. Without a target S (the no-target row) it is undefined (`–`).
- **Avg@K**: the mean over all seeds of the fraction of the K attempts that were right (the mean
  of `avg_of_n`). It can never exceed % correct, yet the paper's Avg@4 does (86.3 > 84, 87.4 >
  71): the paper must average it another way, most likely over correct items only, which is
  what **Avg@K (correct)** shows (the mean over pass@K seeds).
- **#search**: the mean over correct seeds of the fewest searches among right attempts. The
  official `best_n_search_steps` also gives incorrect items a count (a random rollout's), so
  the paper's number may include them.
- **LM calls/seed, tokens/seed**: every LM call (generator, reviser, agent, judge) a seed took
  to reach the row's state, the shared round 0 included: arms compare at equal cost.
- Rows are cumulative, as in the paper: "+k" is every seed's latest pair after up to k more
  rounds (an accepted pair stays accepted). Intervals: 95 % percentile bootstrap over seeds;
  the paired rows resample the seeds once for both arms (the same round 0 in each).
"""


def _ci(v: Any, ci: list | None, fmt: str = "{:.1f}") -> str:
    if v is None:
        return "–"
    text = fmt.format(v)
    return f"{text} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else f"{text} [n/a]"


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def row_label(arm: str, r: int) -> str:
    if arm == NO_TARGET:
        return "A_gen w/o S"
    return "A_gen (round 0)" if r == 0 else f"+{r} {arm}"


def _paper(arm: str, r: int) -> str:
    ref = PAPER.get(("round0", 0) if r == 0 and arm != NO_TARGET else (arm, r))
    return " / ".join("–" if x is None else f"{x:g}" for x in ref) if ref else ""


def display_rows(table: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The measured rows as the report shows them (round 0 once: both arms share it)."""
    out, seen_round0 = [], False
    for t in table:
        if t["arm"] != NO_TARGET and t["round"] == 0:
            if seen_round0:
                continue
            seen_round0 = True
        vals = [
            row_label(t["arm"], t["round"]),
            str(t["n_seeds"]),
            _ci(t["pct_correct"], t["pct_correct_ci"]),
            _ci(t["pct_pass"], t["pct_pass_ci"]),
            _num(t["avg_at_k"]),
            _num(t["avg_at_k_correct"]),
            _num(t["mean_searches"]),
            _num(t["lm_calls"], "{:.1f}"),
            _num(t["tokens"], "{:.0f}"),
            _paper(t["arm"], t["round"]),
        ]
        out.append(dict(zip(COLS, vals, strict=True)))
    return out


def paired_display(paired: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        dict(
            zip(
                PAIRED_COLS,
                [
                    str(p["round"]),
                    str(p["n_seeds"]),
                    p["metric"],
                    _ci(p["diff"], p["ci"], "{:+.1f}"),
                ],
                strict=True,
            )
        )
        for p in paired
    ]


def header(manifest: dict[str, Any]) -> str:
    p, m = manifest["params"], manifest["models"]
    return (
        f"collection `{p['collection']}` ({manifest.get('collection_version')}), "
        f"{p['seeds']} seeds, K={p['attempts']}, R={p['rounds']}, S {p['steps']}, arms "
        f"{p['arms']}, {p['bootstrap']} bootstrap resamples (--seed {p['seed']}); generator "
        f"`{m['generator']}`, agent `{m['agent']}`, judge `{m['judge']}`"
    )


def table_markdown(manifest: dict[str, Any], result: dict[str, Any]) -> str:
    warn = "".join(f"> warning: {w}\n\n" for w in result["warnings"])
    paired = result["paired"]
    pair_md = md_table(paired_display(paired), PAIRED_COLS) if paired else "(needs both arms)\n"
    return (
        f"# sage experiment `{manifest['run_id']}`\n\n{header(manifest)}.\n\n{warn}"
        f"## Measured, with the paper's numbers beside (the paper's: {PAPER_MODEL})\n\n"
        f"{md_table(display_rows(result['table']), COLS)}\n"
        f"## Paired differences, feedback − resample (percentage points)\n\n{pair_md}\n"
        f"![% pass and % correct by round](plot_experiment.png)\n\n{DEFINITIONS}"
    )


COLORS = {NO_TARGET: "tab:gray", "feedback": "tab:blue", "resample": "tab:orange"}


def plot(table: list[dict[str, Any]], out: Path) -> None:
    """% correct and % pass by round per arm, with the intervals as bands (no-target: one
    point at round 0)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    rounds = sorted({t["round"] for t in table})
    for ax, metric in zip(axes, ("pct_correct", "pct_pass"), strict=True):
        for arm in dict.fromkeys(t["arm"] for t in table):
            rows = [t for t in table if t["arm"] == arm and t[metric] is not None]
            if not rows:
                continue
            xs, ys = [t["round"] for t in rows], [t[metric] for t in rows]
            color = COLORS.get(arm)
            ax.plot(xs, ys, marker="o", label=arm, color=color)
            cis = [t[f"{metric}_ci"] for t in rows]
            if all(cis):
                lo, hi = [c[0] for c in cis], [c[1] for c in cis]
                ax.fill_between(xs, lo, hi, alpha=0.15, color=color)
        ax.set_title(metric.replace("pct_", "% "))
        ax.set_xlabel("rounds after round 0")
        ax.set_xticks(rounds)
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def csv_frame(table: list[dict[str, Any]]) -> pl.DataFrame:
    """The table's rows flat: each interval as two columns, _lo and _hi."""
    flat = []
    for t in table:
        row = {}
        for k, v in t.items():
            if k.endswith("_ci"):
                row[f"{k[:-3]}_lo"], row[f"{k[:-3]}_hi"] = v if v else (None, None)
            else:
                row[k] = v
        flat.append(row)
    return pl.DataFrame(flat, infer_schema_length=None)


TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("flows.reports", "."),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("experiment.html.j2")


def write_outputs(root: Path, manifest: dict[str, Any], result: dict[str, Any]) -> None:
    """table.json, table.csv, table.md, the plot and report.html (each written atomically)."""
    store = RunStore(root.parent, root.name)
    store.write_json("table.json", result)
    store.write_text("table.csv", csv_frame(result["table"]).write_csv())
    store.write_text("table.md", table_markdown(manifest, result))
    plot(result["table"], root / "plot_experiment.png")
    png = base64.b64encode((root / "plot_experiment.png").read_bytes()).decode()
    html = TEMPLATE.render(
        title=f"sage experiment {manifest['run_id']}",
        header=header(manifest),
        warnings=result["warnings"],
        rows=cells(display_rows(result["table"]), COLS),
        cols=COLS,
        paired=cells(paired_display(result["paired"]), PAIRED_COLS),
        paired_cols=PAIRED_COLS,
        plot=f"data:image/png;base64,{png}",
        definitions=DEFINITIONS,
        data=Markup(json.dumps(result).replace("</", "<\\/")),
    )
    store.write_text("report.html", html)
