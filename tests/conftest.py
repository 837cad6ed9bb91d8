"""Shared fixtures: real embedded Qdrant, real fastembed and the real local LLM."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import DEMO_CORPUS, LOCAL_THREADS, SAGE, clean_env

# Prefect's ephemeral API logs "Stopping temporary server" from an exit hook, after pytest
# has closed the streams its log handlers write to; without this every run ends in a
# "ValueError: I/O operation on closed file" traceback that hides the real summary.
logging.raiseExceptions = False

# Each test session (each xdist worker) gets its own Prefect home: a fresh database that two
# workers' temporary APIs never share (SQLite locks), and none of the user's own runs.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(
    prefix=f"sage-test-prefect-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"
)

MODELS_DIR = Path(os.environ.get("SAGE_MODELS_DIR", Path.home() / ".cache" / "sage" / "models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The models folder with the verified embedding model (MiniLM; pulled once per machine,
    as `sage models pull` does). The local LLM is not pulled here: see ``llm_models_dir``."""
    from modules import model_store

    model_store.ensure_models(MODELS_DIR, ("embedder",))
    return MODELS_DIR


@pytest.fixture(scope="session")
def llm_models_dir(models_dir) -> Path:
    """The models folder with the local LLM's GGUF too: only for tests marked ``llm``."""
    from modules import model_store

    model_store.ensure_models(MODELS_DIR, ("llm",))
    return MODELS_DIR


# The two longest tests (the local LLM's: ~460 and ~270 s of a ~900 s run) lead the
# collection, so worksteal's first share (a contiguous half) starts with them, back to back,
# and the other worker, then both, take the rest: a worker that drew one late ran it alone
# for the run's last minutes while the other core sat idle (47-76 % busy over the last 4 min)
LONGEST_FIRST = (
    "test_local_model_on_ten_hotpotqa_questions_over_a_real_index",
    "test_tiny_generation_with_the_local_model_writes_every_artifact",
)


def pytest_collection_modifyitems(config, items):
    """`-m "not llm"` must never need the local LLM: a test that asks for it is marked.
    ``LONGEST_FIRST`` leads the collection (the same order in every xdist worker)."""
    for item in items:
        wants = {"llm_models_dir", "local_lm"} & set(getattr(item, "fixturenames", ()))
        if wants and item.get_closest_marker("llm") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {sorted(wants)}: mark it llm")
    first = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.name, len(first)))  # stable: the rest in order


@pytest.fixture(scope="session")
def local_lm(llm_models_dir):
    """The real local LLM (Qwen2.5-Coder-0.5B-Instruct, llama.cpp in-process), uncached."""
    from modules.llm.lm import LMConfig, build_lm

    return build_lm(
        LMConfig(
            model="local",
            models_dir=llm_models_dir,
            cache=False,
            temperature=0.0,
            n_threads=LOCAL_THREADS,
        )
    )


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, models_dir) -> Path:
    """The demo corpus indexed once per test session (`sage index`, collection `demo`): the
    ``qdrant`` folder of a data dir. Tests use a private copy (``indexed_workdir``)."""
    wd = tmp_path_factory.mktemp("demo-index")
    res = subprocess.run(
        [SAGE, "index", str(DEMO_CORPUS), "--collection", "demo", "--json"],
        cwd=wd, capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return wd / ".sage" / "qdrant"


@pytest.fixture(scope="session")
def indexed_workdir(demo_index, tmp_path_factory) -> Callable[..., Path]:
    """``make(name)`` -> a new working directory whose data dir (``.sage``) holds a copy of
    the indexed demo corpus; ``make(name, into=path)`` copies it into ``path`` instead."""

    def make(name: str = "wd", into: Path | None = None) -> Path:
        wd = into or tmp_path_factory.mktemp(name)
        shutil.copytree(demo_index, wd / ".sage" / "qdrant")
        return wd

    return make


def pytest_unconfigure(config):
    """Stop this session's Prefect API (``tests.helpers.session_api``); remove its home."""
    from tests.helpers import stop_session_api

    stop_session_api()
    shutil.rmtree(os.environ["PREFECT_HOME"], ignore_errors=True)
