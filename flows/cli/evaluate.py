"""`sage validate`, `sage evaluate` and `sage compare`: checking a run, and the search agent
on a QA set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import add_flow_command, emit, say
from flows.evaluate import EvaluateParams
from flows.validate import ValidateParams


def validate(ctx: typer.Context, params: ValidateParams, as_json: bool) -> None:
    """Quality/difficulty validation of a run; writes RUN_DIR/validation/<id>/."""
    from flows.validate import validate_run

    s = validate_run(params, ctx.obj.overrides)
    flags = ", ".join(f"{k} {v}" for k, v in s["flags"].items())
    human = (
        f"validation dir: {s['validation_dir']}\n"
        f"{s['items']} items, {s['kept']} kept; flagged: {flags}; "
        f"{s['rejected']} rejected seeds in the failure taxonomy\n"
        f"solver checks: {s['solver_checks']['lm_calls']} LM calls "
        f"({s['solver_checks']['lm_calls_per_item']} per item)"
    )
    for w in s.get("warnings") or []:
        say(f"warning: {w}")
    emit(s, as_json, human)


def evaluate(ctx: typer.Context, params: EvaluateParams, as_json: bool) -> None:
    """Run the search agent on a QA set: accuracy, Avg@K, searches, parse rate, cost."""
    from flows.evaluate import evaluate_agent

    s = evaluate_agent(params, ctx.obj.overrides)
    o = s["metrics"]["overall"]
    human = (
        f"evaluation dir: {s['run_dir']}\n"
        f"{o.get('questions', 0)} questions: accuracy {o.get('accuracy')}, "
        f"Avg@K {o.get('avg_at_k')}, mean searches {o.get('mean_searches')}, "
        f"step parse rate {o.get('step_parse_rate')}, "
        f"{o.get('seconds_per_attempt')} s per attempt"
    )
    emit(s, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the `validate`, `evaluate` and `compare` commands to the sage CLI."""
    add_flow_command(app, "validate", ValidateParams, validate)
    add_flow_command(app, "evaluate", EvaluateParams, evaluate)

    @app.command("compare")
    def compare(
        eval_dirs: Annotated[list[Path], typer.Argument(help="Evaluation run directories.")],
    ) -> None:
        """Print a markdown table comparing evaluations (mean searches, accuracy per dataset)."""
        from flows.evaluate import compare_evaluations

        typer.echo(compare_evaluations(eval_dirs))
