"""`sage validate`, `sage evaluate` and `sage compare`: checking a run, and the search agent
on a QA set."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `validate`, `evaluate` and `compare` commands to the sage CLI."""

    @app.command("validate")
    def validate(
        ctx: typer.Context,
        run_dir: Annotated[Path, typer.Argument(help="A run directory (or runs/latest).")],
        attempts: Annotated[
            int | None, typer.Option(help="Fresh attempts per item (default: the run's K).")
        ] = None,
        reverify: Annotated[bool, typer.Option(help="Re-run the search agent on items.")] = True,
        solver_lm: Annotated[
            str | None, typer.Option(help="Another agent model for cross-solver difficulty.")
        ] = None,
        max_searches: Annotated[int | None, typer.Option(help="Agent budget.")] = None,
        dup_threshold: Annotated[float, typer.Option(help="Near-duplicate cosine.")] = 0.92,
        shortcut_k: Annotated[int, typer.Option(help="Top-k of the shortcut probe.")] = 3,
        tag: Annotated[bool, typer.Option(help="LLM failure/reasoning tags.")] = True,
        max_tagged: Annotated[int | None, typer.Option(help="Tag at most N rejects.")] = None,
        strict: Annotated[
            bool, typer.Option(help="Filtered copy also needs re-verified difficulty.")
        ] = False,
        validation_id: Annotated[str | None, typer.Option(help="Re-use to resume.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Quality/difficulty validation of a run; writes RUN_DIR/validation/<id>/."""
        from flows.cli import emit
        from flows.validate import ValidateParams, validate_run

        params = ValidateParams(
            run_dir=str(run_dir), attempts=attempts, reverify=reverify, solver_lm=solver_lm,
            max_searches=max_searches, dup_threshold=dup_threshold, shortcut_k=shortcut_k,
            tag=tag, max_tagged=max_tagged, strict=strict, validation_id=validation_id,
        )  # fmt: skip
        params.validate()
        s = validate_run(**asdict(params), settings_overrides=ctx.obj.overrides)
        flags = ", ".join(f"{k} {v}" for k, v in s["flags"].items())
        human = (
            f"validation dir: {s['validation_dir']}\n"
            f"{s['items']} items, {s['kept']} kept; flagged: {flags}; "
            f"{s['rejected']} rejected seeds in the failure taxonomy"
        )
        emit(s, as_json, human)

    @app.command("evaluate")
    def evaluate(
        ctx: typer.Context,
        dataset: Annotated[Path, typer.Argument(help="QA file, or a sage run directory.")],
        fmt: Annotated[
            str, typer.Option("--format", help="sage | hotpotqa | musique | qa (JSON lines)")
        ] = "sage",
        collection: Annotated[str | None, typer.Option(help="Qdrant collection (alias).")] = None,
        attempts: Annotated[int, typer.Option(help="Agent attempts K per question.")] = 1,
        limit: Annotated[int | None, typer.Option(help="Evaluate at most N questions.")] = None,
        offset: Annotated[int, typer.Option(help="Skip the first N questions.")] = 0,
        max_searches: Annotated[int, typer.Option(help="Search-agent budget.")] = 10,
        temperature: Annotated[float, typer.Option(help="Agent sampling temperature.")] = 0.7,
        seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
        run_id: Annotated[str | None, typer.Option(help="Evaluation id; re-use to resume.")] = None,
        attempt_workers: Annotated[int, typer.Option(help="Attempts run in parallel.")] = 1,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Run the search agent on a QA set: accuracy, Avg@K, searches, parse rate, cost."""
        from flows.cli import emit
        from flows.evaluate import EvaluateParams, evaluate_agent

        settings = ctx.obj.settings()
        params = EvaluateParams(
            dataset=str(dataset), fmt=fmt, collection=collection or settings.collection,
            attempts=attempts, limit=limit, offset=offset, max_searches=max_searches,
            temperature=temperature, seed=seed, run_id=run_id, attempt_workers=attempt_workers,
        )  # fmt: skip
        params.validate()
        s = evaluate_agent(**asdict(params), settings_overrides=ctx.obj.overrides)
        o = s["metrics"]["overall"]
        human = (
            f"evaluation dir: {s['run_dir']}\n"
            f"{o.get('questions', 0)} questions: accuracy {o.get('accuracy')}, "
            f"Avg@K {o.get('avg_at_k')}, mean searches {o.get('mean_searches')}, "
            f"step parse rate {o.get('step_parse_rate')}, "
            f"{o.get('seconds_per_attempt')} s per attempt"
        )
        emit(s, as_json, human)

    @app.command("compare")
    def compare(
        eval_dirs: Annotated[list[Path], typer.Argument(help="Evaluation run directories.")],
    ) -> None:
        """Print a markdown table comparing evaluations (mean searches, accuracy per dataset)."""
        from flows.evaluate import compare_evaluations

        typer.echo(compare_evaluations(eval_dirs))
