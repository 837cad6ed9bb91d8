"""`sage demo`: models -> index the bundled demo corpus -> a small SAGE generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.generate import generate_dataset
from flows.index import index_corpus
from modules import model_store
from modules.settings import load_settings

DEMO_CORPUS = Path(__file__).resolve().parent / "demo_data" / "corpus.jsonl"
DEMO_COLLECTION = "demo"
REAL_SIZE_HINT = (
    "this was a tiny demo (sized to finish in minutes on a CPU). A real-size run: "
    "sage index YOUR_CORPUS.jsonl --collection NAME && "
    "sage generate --collection NAME --n 100 --steps 2-5 --rounds 2 --attempts 4 "
    "(with a served model: sage --lm hosted_vllm/MODEL --api-base http://HOST:8000/v1 generate ...)"
)


@flow(name="sage-demo", validate_parameters=False)
def demo(
    seeds: int = 1,
    attempts: int = 2,
    rounds: int = 1,
    steps: str = "2",
    max_searches: int = 3,
    generator_searches: int = 2,
    run_id: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Index the demo corpus (incremental: a re-run embeds nothing) and generate from it."""
    settings = load_settings(**(settings_overrides or {}))
    model_store.ensure_models(settings.models_dir)
    index = index_corpus(str(DEMO_CORPUS), collection=DEMO_COLLECTION, settings=settings)
    run = generate_dataset(
        collection=DEMO_COLLECTION,
        seeds=seeds,
        attempts=attempts,
        rounds=rounds,
        steps=steps,
        run_id=run_id,
        max_searches=max_searches,
        generator_searches=generator_searches,
        attempt_workers=attempts,  # the K attempts run at once, in parallel model slots
        settings_overrides=settings_overrides,
    )
    return {"index": index, **run}
