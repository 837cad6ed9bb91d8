"""`sage demo`: models -> index the bundled demo corpus -> a small SAGE generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from prefect import flow

from flows.engine.params import (
    Attempts,
    FlowParams,
    GeneratorSearches,
    MaxSearches,
    Rounds,
    RunId,
    Steps,
    option,
)
from flows.generate import GenerateParams, generate_dataset
from flows.index import IndexParams, index_corpus
from flows.runs.showcase import showcase
from modules import model_store
from modules.settings import load_settings

DEMO_CORPUS = Path(__file__).resolve().parent / "data" / "demo" / "corpus.jsonl"
DEMO_COLLECTION = "demo"
# The seed document the demo starts from: "Tollins Reach Corn Exchange" (w086), written for
# the demo so that its natural question is a bridge: the hall "was opened in the year the
# Treaty of Vaunt was signed", and only the treaty's passage (w048, which never names the
# hall) gives the year, so "When was the Corn Exchange opened?" needs two searches and its
# answer comes from a note (answer_source "any"). The demos' trainset avoids it.
DEMO_SEEDS: tuple[str, ...] = ("w086",)
DEMO_MODELS = {"generator": "llm15", "agent": "llm15", "judge": "llm15"}
REAL_SIZE_HINT = (
    "this was a tiny demo (sized to finish in minutes on a CPU). A real-size run: "
    "sage index YOUR_CORPUS.jsonl --collection NAME && "
    "sage generate --collection NAME --n 100 --steps 2-5 --rounds 2 --attempts 4 "
    "(with a served model: sage --lm hosted_vllm/MODEL --api-base http://HOST:8000/v1 generate ...)"
)


class DemoParams(FlowParams):
    """What `sage demo` takes: a generation sized to finish in minutes on a CPU."""

    SHARES: ClassVar[tuple[str, ...]] = (
        "seeds",
        "attempts",
        "rounds",
        "steps",
        "max_searches",
        "generator_searches",
        "answer_types",
        "answer_source",
        "seed",
        "run_id",
    )

    seeds: int = option(1, "Seed documents to process.", ge=1)
    attempts: Attempts = option(2, "Search-agent attempts K (run at once).")
    rounds: Rounds = 1
    steps: Steps = "2"
    max_searches: MaxSearches = 3
    generator_searches: GeneratorSearches = 2
    answer_types: str = option("date", "Answer types drawn per seed.")
    answer_source: Literal["seed", "any"] = option(
        "any", "seed: the answer is stated in the seed document; any: in any passage found."
    )
    seed: int = option(0, "Random seed (the seed plan and every sample).")
    run_id: RunId = option(None, "Run id (re-use to resume).")


@flow(name="sage-demo")
def demo(params: DemoParams, settings_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index the demo corpus (incremental: a re-run embeds nothing) and generate from it."""
    overrides = dict(settings_overrides or {})
    settings = load_settings(**overrides)
    if settings.local_models is None:
        overrides["local_models"] = DEMO_MODELS
    local = set((overrides.get("local_models") or settings.local_models).values())
    model_store.ensure_models(settings.models_dir, (*sorted(local), "embedder"))
    index = index_corpus(IndexParams(path=str(DEMO_CORPUS), collection=DEMO_COLLECTION), overrides)
    gen = GenerateParams.of(
        params,
        collection=DEMO_COLLECTION,
        attempt_workers=params.attempts,  # the K attempts run at once, in parallel model slots
        prefer_docs=list(DEMO_SEEDS),
    )
    summary = generate_dataset(gen, overrides)
    return {"index": index, **summary, "showcase": showcase(Path(summary["run_dir"]))}
