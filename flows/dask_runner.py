"""Seeds of the generate flow on Dask worker processes, with the flow itself unchanged.

The generate flow hands every seed task its ``Runtime`` (an open Qdrant client and LMs) and
its ``Ledger`` (holding a ``threading.Lock``); neither can be pickled to another process.
``SageDaskTaskRunner`` is prefect-dask's DaskTaskRunner that ships stand-ins which can:

* ``RemoteRuntime``: the params and settings. The worker opens its own Runtime on first
  use and keeps it (per process) for every later seed with the same params and settings.
* ``WorkerLedger``: the run directory. A worker reads a seed's finished rounds from
  ``checkpoints.jsonl`` at every (re)try, so a retried task resumes after its last
  checkpoint, and appends new rounds with ``RunStore.append_round``: one ``write()`` of one
  whole line on an ``O_APPEND`` file, so lines from several processes never interleave.

When the flow reads a seed's future, its own Ledger takes in the lines appended since the
last read (``sync_ledger``), so ``--n``, ``--budget-tokens`` and the progress include
the workers' rounds.

What a worker needs: a Qdrant server (``SAGE_QDRANT=http://...``; embedded Qdrant is
locked by the flow process), an LM of its own (a served one; with ``SAGE_LM=local`` every
worker loads its own llama.cpp copy), and the run directory on a filesystem every worker
writes to (the local disk for ``dask``; a shared volume, not NFS, for ``dask://``).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import json
import threading
import weakref
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from distributed import LocalCluster
from prefect.utilities.collections import visit_collection
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from flows.run_store import CHECKPOINTS, RunStore
from flows.task_runners import DEFAULT_OPENER, check_task_runner
from modules.settings import Settings


class SeedFuture(PrefectDaskFuture):
    """A Dask future whose result first brings the workers' checkpoints into the ledger.

    Its ``wrapped_future`` is a ``concurrent.futures.Future`` that completes with the Dask
    one, so the flow's waits (flows/futures.py: first done, interruptible) treat it like a
    thread's future; ``dask_future`` is the Dask future itself.
    """

    def __init__(self, wrapped_future: Any, task_run_id: Any, ledgers: list[Any]):
        super().__init__(wrapped_future=wrapped_future, task_run_id=task_run_id)
        self.ledgers = ledgers
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        wrapped_future.add_done_callback(self._set_done)

    def _set_done(self, _: Any) -> None:
        if not self._done.done():
            self._done.set_result(None)

    @property
    def wrapped_future(self) -> concurrent.futures.Future[None]:  # type: ignore[override]
        return self._done

    @property
    def dask_future(self) -> Any:
        return self._wrapped_future

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        try:
            return super().result(timeout=timeout, raise_on_failure=raise_on_failure)
        finally:
            for ledger in self.ledgers:
                sync_ledger(ledger)


class SageDaskTaskRunner(DaskTaskRunner):
    """DaskTaskRunner that ships a Runtime and a Ledger as picklable stand-ins."""

    def __init__(self, *args: Any, runtime_opener: str = DEFAULT_OPENER, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.runtime_opener = runtime_opener

    def duplicate(self) -> SageDaskTaskRunner:
        return type(self)(
            address=self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            client_kwargs=self.client_kwargs,
            performance_report_path=self.performance_report_path,
            runtime_opener=self.runtime_opener,
        )

    @property
    def client(self) -> Any:
        if self._client is None and not self.address and self._cluster is None:
            self._point_workers_at_this_api()
        return super().client

    def _point_workers_at_this_api(self) -> None:
        """Local workers report their task runs to this flow's Prefect API (an ephemeral one
        too) instead of each starting a temporary server of its own."""
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        url = getattr(getattr(ctx, "client", None), "api_url", None)
        local = self.cluster_class is None or self.resolved_cluster_class is LocalCluster
        if url and local and self.cluster_kwargs.get("processes", True):
            env = dict(self.cluster_kwargs.get("env") or {})
            env.setdefault("PREFECT_API_URL", str(url).rstrip("/"))
            self.cluster_kwargs = {**self.cluster_kwargs, "env": env}

    def _optimize_futures(self, expr: Any) -> Any:
        """Seed futures passed on to another task travel as their Dask futures."""

        def visit(value: Any) -> Any:
            if isinstance(value, SeedFuture):
                return value.dask_future
            return value.wrapped_future if isinstance(value, PrefectDaskFuture) else value

        return visit_collection(expr, visit_fn=visit, return_data=True)

    def submit(self, task: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        ledgers = [v for v in parameters.values() if _is_ledger(v)]
        shipped = {k: self._to_remote(v) for k, v in parameters.items()}
        fut = super().submit(task, shipped, *args, **kwargs)
        return SeedFuture(fut.wrapped_future, fut.task_run_id, ledgers)

    def _to_remote(self, value: Any) -> Any:
        from flows.runtime import Runtime

        if isinstance(value, Runtime):
            if self.runtime_opener == DEFAULT_OPENER:
                check_task_runner(value.settings.with_overrides(task_runner="dask"))
            return RemoteRuntime(value.params, value.settings, self.runtime_opener)
        if _is_ledger(value):
            mark_synced(value)
            return WorkerLedger(str(value.store.runs_dir), value.store.run_id, value.exhausted)
        return value


def _is_ledger(value: Any) -> bool:
    from flows.generate import Ledger

    return isinstance(value, Ledger)


# -- the flow's ledger --------------------------------------------------------------------
_SYNCED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_SYNC_LOCK = threading.Lock()


def mark_synced(ledger: Any) -> None:
    """Remember how much of the checkpoint log the ledger holds (at a run's first submit)."""
    with _SYNC_LOCK:
        if ledger not in _SYNCED:
            path = ledger.store.path / CHECKPOINTS
            _SYNCED[ledger] = path.stat().st_size if path.exists() else 0


def sync_ledger(ledger: Any) -> int:
    """Take the checkpoint lines appended (by any process) since the last sync into the
    flow's ledger; returns how many rounds were new to it."""
    with _SYNC_LOCK:
        records, _SYNCED[ledger] = read_complete_lines(
            ledger.store.path / CHECKPOINTS, _SYNCED.get(ledger, 0)
        )
        new = 0
        for rec in records:
            rounds = ledger.done.setdefault(rec["seed_id"], [])
            if any(int(r["round"]) == int(rec["round"]) for r in rounds):
                continue  # the first line of a round wins, as in dataset.group_rounds
            rounds.append(rec)
            rounds.sort(key=lambda r: int(r["round"]))
            ledger.spent += int(rec.get("tokens") or 0)
            new += 1
        return new


def read_complete_lines(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The JSON lines of ``path`` from byte ``offset`` to its last newline, and the offset
    after them. Never truncates: a line another process is still writing is left alone."""
    if not path.exists():
        return [], offset
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    return [json.loads(raw) for raw in data[:end].split(b"\n") if raw.strip()], offset + end


# -- the worker's side --------------------------------------------------------------------
_RUNTIMES: dict[str, Any] = {}
_RUNTIMES_LOCK = threading.Lock()


@dataclass
class RemoteRuntime:
    """A Runtime as a worker process gets it: opened there on first use, once per process."""

    params: Any
    settings: Settings
    opener: str = DEFAULT_OPENER

    def key(self) -> str:
        params = asdict(self.params) if is_dataclass(self.params) else self.params
        s = self.settings
        secrets = [k.get_secret_value() if k else None for k in (s.api_key, s.qdrant_api_key)]
        blob = json.dumps(
            [self.opener, params, s.model_dump(mode="json"), secrets], sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self) -> Any:
        """This process's Runtime for these params and settings (opened once)."""
        key = self.key()
        with _RUNTIMES_LOCK:
            if key not in _RUNTIMES:
                _RUNTIMES[key] = resolve(self.opener)(self.params, self.settings)
            return _RUNTIMES[key]

    def run_seed(self, *args: Any, **kwargs: Any) -> None:
        self.get().run_seed(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("params", "settings", "opener"):
            raise AttributeError(name)
        return getattr(self.get(), name)


class WorkerLedger:
    """What a seed task asks of the flow's Ledger, answered from the checkpoint log."""

    def __init__(self, runs_dir: str, run_id: str, exhausted: bool = False):
        self.runs_dir, self.run_id, self._exhausted = runs_dir, run_id, bool(exhausted)
        self.store = RunStore(Path(runs_dir), run_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (WorkerLedger, (self.runs_dir, self.run_id, self._exhausted))

    @property
    def exhausted(self) -> bool:
        return self._exhausted  # as the flow saw it when it submitted the seed

    def rounds(self, seed_id: str) -> list[dict[str, Any]]:
        """This seed's durable rounds in round order, one per round (the first line wins)."""
        path = self.store.path / CHECKPOINTS
        if not path.exists():
            return []
        data = path.read_bytes()
        needle = f'"seed_id": {json.dumps(seed_id, ensure_ascii=False)}'.encode()
        by_round: dict[int, dict[str, Any]] = {}
        for raw in data[: data.rfind(b"\n") + 1].split(b"\n"):
            if needle in raw:
                rec = json.loads(raw)
                if rec.get("seed_id") == seed_id:
                    by_round.setdefault(int(rec["round"]), rec)
        return [by_round[r] for r in sorted(by_round)]

    def record(self, seed_id: str, rec: dict[str, Any]) -> None:
        self.store.append_round(rec)


def resolve(dotted: str) -> Any:
    """``package.module:attr.attr`` -> the object."""
    module, _, attr = dotted.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
