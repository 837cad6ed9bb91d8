"""`sage optimize`: DSPy optimization of the search agent, generator or reviser."""

from __future__ import annotations

import typer

from flows.cli.options import add_flow_command, emit
from flows.optimize import OptimizeParams


def optimize(ctx: typer.Context, params: OptimizeParams, as_json: bool) -> None:
    """Optimize a SAGE module on previous runs (or the agent on QA sets); writes
    OUT_DIR/<module>-<time>.json."""
    from flows.optimize import optimize_module

    s = optimize_module(params, ctx.obj.overrides)
    b, a = s["dev_score_before"], s["dev_score_after"]
    change = "no change" if a == b else f"{a - b:+.3f}"
    human = (
        f"program: {s['program']}\n"
        f"{s['module']} optimized with {s['optimizer']} on {s['train_size']} train / "
        f"{s['dev_size']} dev examples: dev score {b} -> {a} ({change})"
    )
    emit(s, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the `optimize` command to the sage CLI."""
    add_flow_command(app, "optimize", OptimizeParams, optimize)
