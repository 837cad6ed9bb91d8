"""`sage generate` and `sage demo`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flows.cli.options import add_flow_command, emit
from flows.demo import DemoParams
from flows.generate import GenerateParams
from modules.settings import Settings

TaskRunnerOpt = Annotated[
    str | None,
    typer.Option(help="Seed fan-out: thread | dask | dask://HOST:PORT. [SAGE_TASK_RUNNER]"),
]


def generate(
    ctx: typer.Context, params: GenerateParams, as_json: bool, task_runner: str | None
) -> None:
    """Generate a SAGE dataset; prints the run directory. Re-running a --run-id resumes it."""
    from flows.engine.task_runners import build_task_runner
    from flows.generate import generate_dataset

    settings: Settings = ctx.obj.settings(task_runner=task_runner)
    runner = build_task_runner(settings.task_runner, params.widest(settings))
    overrides = {**ctx.obj.overrides, "task_runner": task_runner}
    summary = generate_dataset.with_options(task_runner=runner)(params, overrides)
    emit(summary, as_json, _run_headline(summary))


def _run_headline(summary: dict[str, Any]) -> str:
    m = summary["metrics"]
    last = m["per_round"][-1] if m["per_round"] else {}
    return (
        f"run dir: {summary['run_dir']}\n"
        f"accepted {summary['accepted']} of {m['funnel']['seeds']} seeds "
        f"({summary['stop_reason']}); % correct {last.get('pct_correct')}, "
        f"% pass {last.get('pct_pass')}, mean searches {last.get('mean_min_searches')}; "
        f"{m['cost']['lm_calls']} LM calls, {m['cost']['tokens']} tokens"
    )


def demo_cmd(ctx: typer.Context, params: DemoParams, as_json: bool) -> None:
    """Pull models if missing, index the bundled demo corpus, run a small generation."""
    from flows.demo import REAL_SIZE_HINT, demo
    from flows.runs.showcase import showcase_lines

    summary = demo(params, ctx.obj.overrides)
    idx = summary["index"]
    head = (
        f"indexed {idx['documents']} demo documents into {idx['version']} "
        f"({idx['embedded']} embedded, {idx['reused']} reused)\n"
    )
    item = showcase_lines(summary.get("showcase"))
    emit(summary, as_json, f"{head}{item}\n{_run_headline(summary)}\n{REAL_SIZE_HINT}")


def register(app: typer.Typer) -> None:
    """Add `generate` and `demo` to the sage CLI."""
    add_flow_command(
        app, "generate", GenerateParams, generate, extra={"task_runner": (TaskRunnerOpt, None)}
    )
    add_flow_command(app, "demo", DemoParams, demo_cmd)
