"""Shared fixtures: real embedded Qdrant, real fastembed and the real local LLM."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Prefect's ephemeral API logs "Stopping temporary server" from an exit hook, after pytest
# has closed the streams its log handlers write to; without this every run ends in a
# "ValueError: I/O operation on closed file" traceback that hides the real summary.
logging.raiseExceptions = False

REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "flows" / "demo_data" / "corpus.jsonl"
DEMO_QUESTIONS = REPO / "flows" / "demo_data" / "questions.jsonl"
MODELS_DIR = Path(os.environ.get("SAGE_MODELS_DIR", Path.home() / ".cache" / "sage" / "models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The verified local models (pulled once per machine; `sage models pull` does the same)."""
    from modules import model_store

    model_store.ensure_models(MODELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def local_lm(models_dir):
    """The real local LLM (Qwen2.5-Coder-0.5B-Instruct, llama.cpp in-process), uncached."""
    from modules.lm import LMConfig, build_lm

    return build_lm(LMConfig(model="local", models_dir=models_dir, cache=False, temperature=0.0))
