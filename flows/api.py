"""sage's Python API (``import sage``): the flows the CLI runs, from a notebook or a script.

``index(docs, collection=...)`` takes a corpus file or folder, a polars or pandas
DataFrame, a Hugging Face ``Dataset`` or any iterable of dicts; ``generate(collection=...,
n=...)`` returns a ``Run`` (``.dataset``, ``.metrics``, ``.path``); ``validate(run)`` and
``export(run, format=...)`` take a ``Run`` or a run directory. Keyword options are the
command's options (``attempts=4``, ``steps="2-5"``) or settings, as the CLI's global
options and sage.toml name them (``lm=``, ``api_base=``, ``profile=``, ``qdrant=``).

Each call runs its flow against a temporary Prefect API that dies with the process (as
the CLI does); ``with session():`` starts one for every call in the block. Prefect's log
goes to ``<data_dir>/logs/sage.log``, not to the notebook.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from flows.engine.api_server import temporary_api
from flows.engine.params import FlowParams
from modules.errors import SageError
from modules.settings import Settings, load_settings

LOG_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"
_LOG: dict[str, Path] = {}  # this process's log file, once Prefect's log is routed there


@dataclass
class Run:
    """A generation run on disk (``runs/<run_id>/``) and the summary its flow returned."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """An existing run directory (``runs/latest`` works)."""
        from flows.runs.store import resolve_run_dir

        return cls(resolve_run_dir(Path(path)))

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def dataset(self) -> pl.DataFrame:
        """The accepted items (``dataset.parquet``)."""
        return self._parquet("dataset.parquet")

    @property
    def candidates(self) -> pl.DataFrame:
        """Every round's candidate with its status and cost (``candidates.parquet``)."""
        return self._parquet("candidates.parquet")

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: % correct, % pass, searches per round, the funnel, the cost."""
        return self._json("metrics.json")

    @property
    def manifest(self) -> dict[str, Any]:
        return self._json("manifest.json")

    @property
    def validated(self) -> pl.DataFrame | None:
        """The latest validation's filtered copy, or None before ``validate``."""
        latest = self.path / "validation" / "latest" / "dataset.filtered.parquet"
        return pl.read_parquet(latest) if latest.exists() else None

    def _parquet(self, name: str) -> pl.DataFrame:
        if not (self.path / name).exists():
            raise SageError(f"{self.path / name} is missing: the run has not been finalised")
        return pl.read_parquet(self.path / name)

    def _json(self, name: str) -> dict[str, Any]:
        if not (self.path / name).exists():
            raise SageError(f"{self.path / name} is missing: the run has not been finalised")
        return json.loads((self.path / name).read_text())


def _split(model: type[FlowParams], options: dict[str, Any]) -> tuple[dict, dict]:
    """Options into (the flow's parameters, setting overrides); an unknown name is an error."""
    params, settings = {}, {}
    for key, value in options.items():
        if key in model.model_fields:
            params[key] = value
        elif key in Settings.model_fields:
            settings[key] = value
        else:
            what = model.__name__.removesuffix("Params").lower()
            raise SageError(f"unknown option {key!r}: not a {what} option nor a setting")
    return params, settings


def _route_logs(data_dir: Path) -> None:
    """Log records to ``<data_dir>/logs/sage.log``, as the CLI does, and no longer through
    Prefect's console handlers (the caller's own handlers stay)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    if _LOG:
        return
    ensure_logging_setup()
    path = Path(data_dir).resolve() / "logs" / "sage.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in ("", "uvicorn", "fastapi"):  # the loggers Prefect gives a console handler
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if isinstance(h, PrefectConsoleHandler)]:
            logger.removeHandler(h)
        logger.addHandler(handler)
    _LOG["path"] = path


@contextmanager
def session(**settings: Any) -> Iterator[str]:
    """One temporary Prefect API for every call in the block (each call otherwise starts
    its own, about 10 s); yields its URL (``PREFECT_API_URL``'s when that names a server)."""
    resolved = load_settings(**settings)
    _route_logs(resolved.data_dir)
    with temporary_api(_LOG.get("path")) as url:
        yield url


def _documents(docs: Any) -> Iterable[Mapping[str, Any]] | None:
    """The records of an in-memory corpus, or None for a path."""
    if isinstance(docs, str | os.PathLike):
        return None
    if isinstance(docs, pl.LazyFrame):
        docs = docs.collect()
    if isinstance(docs, pl.DataFrame):
        return docs.iter_rows(named=True)
    if type(docs).__module__.startswith("pandas") and hasattr(docs, "to_dict"):
        return docs.to_dict(orient="records")
    if isinstance(docs, Mapping):  # a dict, or a datasets.DatasetDict
        raise SageError("docs is a mapping: pass one split (ds['train']) or a list of records")
    if isinstance(docs, Iterable):
        return docs
    raise SageError(f"docs: a path, a DataFrame, a Dataset or records, not {type(docs).__name__}")


def corpus_file(docs: Any, collection: str, data_dir: Path) -> str:
    """A path for ``sage index``: ``docs`` itself, or its records written as JSON lines to
    ``<data_dir>/inputs/<collection>.jsonl`` (record i is line i + 1 in error messages)."""
    records = _documents(docs)
    if records is None:
        return str(docs)
    path = Path(data_dir) / "inputs" / f"{collection}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise SageError(f"docs record {i}: a {type(rec).__name__}, not a dict")
            out.write(json.dumps(dict(rec), ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return str(path)


def index(docs: Any, collection: str | None = None, **options: Any) -> dict[str, Any]:
    """Index ``docs`` into ``collection`` (incremental, as ``sage index``); the summary."""
    from flows.index import IndexParams, index_corpus

    params, overrides = _split(IndexParams, options)
    settings = load_settings(**overrides)
    name = collection or settings.collection
    path = corpus_file(docs, name, settings.data_dir)
    built = IndexParams.build(path=path, collection=name, **params)
    with session(**overrides):
        return index_corpus(built, overrides)


def generate(
    collection: str | None = None, n: int | None = None, *, progress: bool = True, **options: Any
) -> Run:
    """Generate a dataset (as ``sage generate``; ``seeds=`` instead of ``n``, the same
    ``run_id=`` resumes); ``progress=False`` hides the progress lines."""
    from flows.engine.progress import watch
    from flows.engine.task_runners import build_task_runner
    from flows.generate import GenerateParams, generate_dataset

    params, overrides = _split(GenerateParams, options)
    built = GenerateParams.build(collection=collection, n=n, **params)
    settings = load_settings(**overrides)
    runner = build_task_runner(settings.task_runner, built.widest(settings))
    with session(**overrides), nullcontext() if progress else watch(_silent):
        summary = generate_dataset.with_options(task_runner=runner)(built, overrides)
    return Run(Path(summary["run_dir"]), summary)


def validate(run: Run | str | Path, **options: Any) -> dict[str, Any]:
    """Validate a run (as ``sage validate``); the summary, with ``validation_dir``."""
    from flows.validate import ValidateParams, validate_run

    params, overrides = _split(ValidateParams, options)
    built = ValidateParams.build(run_dir=str(_run_path(run)), **params)
    with session(**overrides):
        return validate_run(built, overrides)


def export(run: Run | str | Path, format: str = "hf", **options: Any) -> dict[str, Any]:
    """Export a run's training items (as ``sage export``): ``format`` hf, searchr1 or sft;
    options are ``sage export``'s (``test_frac=0.1``, ``style="tools"``, ``out=...``)."""
    from flows.runs.export import export_run

    known = set(inspect.signature(export_run).parameters) - {"run_dir", "fmt"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SageError(f"unknown export option(s) {unknown}: use {sorted(known)}")
    return export_run(_run_path(run), format, **options)  # type: ignore[arg-type]


def _run_path(run: Run | str | Path) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


def _silent(_snapshot: Any) -> None:
    """A progress listener that shows nothing."""
