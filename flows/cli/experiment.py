"""`sage experiment`: the paper's intrinsic table, paired, with bootstrap intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flows.cli.generate import TaskRunnerOpt
from flows.cli.options import add_flow_command, emit
from flows.experiment import ExperimentParams

JSON_ROW_KEYS = (
    "arm",
    "round",
    "n_seeds",
    "pct_correct",
    "pct_correct_ci",
    "pct_pass",
    "pct_pass_ci",
    "avg_at_k",
    "mean_searches",
    "lm_calls",
    "tokens",
)


def experiment(
    ctx: typer.Context, params: ExperimentParams, as_json: bool, task_runner: str | None
) -> None:
    """Run the SAGE paper's intrinsic table on your model and corpus: a shared round 0 per
    seed, then feedback vs resample (and the generator without S), with 95 % bootstrap
    intervals over seeds. Writes runs/<id>/experiment/; re-running a --run-id resumes it."""
    from flows.engine.task_runners import build_task_runner
    from flows.experiment import run_experiment

    settings = ctx.obj.settings(task_runner=task_runner)
    runner = build_task_runner(settings.task_runner, params.concurrency)
    overrides = {**ctx.obj.overrides, "task_runner": task_runner}
    summary = run_experiment.with_options(task_runner=runner)(params, overrides)
    out = summary | {"table": [{k: t.get(k) for k in JSON_ROW_KEYS} for t in summary["table"]]}
    emit(out, as_json, _headline(summary))


def _headline(summary: dict[str, Any]) -> str:
    table = (Path(summary["experiment_dir"]) / "table.md").read_text()
    measured = table.split("## Measured", 1)[1].split("## Paired", 1)[0]
    return f"experiment dir: {summary['experiment_dir']}\n## Measured{measured.rstrip()}"


def register(app: typer.Typer) -> None:
    """Add `experiment` to the sage CLI."""
    add_flow_command(
        app,
        "experiment",
        ExperimentParams,
        experiment,
        extra={"task_runner": (TaskRunnerOpt, None)},
    )
