"""The one run-artifact writer: runs/<run_id>/ with an append-only checkpoint log.

Every finished round is appended to ``checkpoints.jsonl`` (one JSON line, flushed and
fsynced) before anything else happens, so a crash or ``kill -9`` loses at most the
round in flight. All other artifacts are derived from the checkpoints and written
atomically (temp file + rename), so a resumed run rebuilds them identically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from flows.runs.records import QuestionRecord, RoundRecord, by_seed, first_rounds
from modules.errors import SageError

CHECKPOINTS = "checkpoints.jsonl"
MANIFEST = "manifest.json"
LATEST = "latest"
STARTED = "started"  # one empty marker file per seed task that began


def new_run_id(prefix: str = "") -> str:
    """A new run (or validation, evaluation) id: the UTC time, to the second."""
    return prefix + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def rounds_in_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One seed's records in round order; the first record of a round wins (a round re-run
    after a crash may have been appended twice)."""
    by_round: dict[int, dict[str, Any]] = {}
    for rec in records:
        by_round.setdefault(int(rec["round"]), rec)
    return [by_round[r] for r in sorted(by_round)]


def config_conflict(run_id: str, old: dict | None, new: dict | None) -> None:
    """Refuse to resume a run under another SAGE configuration, naming the knob."""
    if not old or not new:
        return  # a manifest from before configs were recorded, or a flow without one
    from modules.config import SageConfig

    change = SageConfig.from_record(new).resume_conflict(old)
    if change:
        raise SageError(
            f"run {run_id!r} exists with another configuration ({change}): use another "
            "--run-id, or the settings it was started with"
        )


class RunStore:
    """Reads and writes one run directory. Thread-safe appends."""

    def __init__(self, runs_dir: Path, run_id: str):
        if not run_id or "/" in run_id or run_id in {".", "..", LATEST}:
            raise SageError(f"invalid run id {run_id!r}")
        self.runs_dir = Path(runs_dir)
        self.run_id = run_id
        self.path = self.runs_dir / run_id
        self._lock = threading.Lock()

    # -- manifest -------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / MANIFEST).exists()

    def read_manifest(self) -> dict[str, Any]:
        p = self.path / MANIFEST
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise SageError(f"{p}:{exc.lineno}: corrupt manifest ({exc.msg})") from exc

    def start(self, manifest: dict[str, Any], resume_keys: Iterable[str]) -> bool:
        """Create the run, or resume it if it exists with the same settings. True = resumed."""
        if self.exists():
            old = self.read_manifest()
            for key in resume_keys:
                if old.get("params", {}).get(key) != manifest.get("params", {}).get(key):
                    raise SageError(
                        f"run {self.run_id!r} exists with {key}={old['params'].get(key)!r}, "
                        f"not {manifest['params'].get(key)!r}: use another --run-id to change it"
                    )
            config_conflict(self.run_id, old.get("config"), manifest.get("config"))
            kept = {k: old[k] for k in ("seeds", "questions", "created") if k in old}
            manifest = {**manifest, **kept}  # the original plan and creation time stand
            manifest["resumed"] = int(old.get("resumed", 0)) + 1
            self.write_json(MANIFEST, manifest)
            self.repair_tail()
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json(MANIFEST, manifest)
        return False

    # -- checkpoints ----------------------------------------------------------------------
    def seed_rounds(self, seed_id: str) -> list[dict[str, Any]]:
        """One seed's durable rounds in round order (the first line of a round wins)."""
        path = self.path / CHECKPOINTS
        if not path.exists():
            return []
        needle = f'"seed_id": {json.dumps(seed_id, ensure_ascii=False)}'.encode()
        with path.open("rb") as fh:
            lines = (json.loads(raw) for raw in fh if needle in raw and raw.endswith(b"\n"))
            return rounds_in_order(rec for rec in lines if rec.get("seed_id") == seed_id)

    def first_start(self, seed_id: str) -> bool:
        """True the first time a seed's task starts in this run; False when it runs again (a
        retry, a rerun after its Dask worker died), which must read its saved rounds first."""
        folder = self.path / STARTED
        folder.mkdir(exist_ok=True)
        name = hashlib.sha1(seed_id.encode()).hexdigest()[:20]
        try:
            os.close(os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def append_record(self, record: dict[str, Any]) -> None:
        """Durably append one checkpoint record (a generation round, an evaluated question or
        a validated item): one write() of one whole line on an O_APPEND file, so lines from
        several processes (Dask workers) never interleave."""
        line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode()
        with self._lock, (self.path / CHECKPOINTS).open("ab", buffering=0) as fh:
            fh.write(line)
            os.fsync(fh.fileno())

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every durable checkpoint record, streamed line by line (a run's log can be larger than
        memory). A last line without its newline is being written (or was torn by a kill): it
        is skipped, never cut, since another process may still be appending it."""
        p = self.path / CHECKPOINTS
        if not p.exists():
            return
        with p.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    return
                if raw.strip():
                    try:
                        yield json.loads(raw)
                    except json.JSONDecodeError as exc:
                        msg = f"{p}:{lineno}: corrupt checkpoint line ({exc.msg})"
                        raise SageError(msg) from exc

    def repair_tail(self) -> None:
        """Cut a torn last line (a writer killed mid-write) so the next append starts a fresh
        line. Only when no one appends: at the start of a resumed run."""
        p = self.path / CHECKPOINTS
        if not p.exists():
            return
        with self._lock, p.open("r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            keep, pos = 0, size
            while pos > 0 and not keep:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                cut = fh.read(step).rfind(b"\n")
                keep = pos + cut + 1 if cut >= 0 else 0
            fh.truncate(keep)

    def load_records(self) -> list[dict[str, Any]]:
        """All durable checkpoint records (see ``iter_records``)."""
        return list(self.iter_records())

    # -- typed records ----------------------------------------------------------------------
    def append_round(self, record: RoundRecord) -> None:
        """Durably append one generation round (see ``append_record``)."""
        self.append_record(record.to_dict())

    def round_records(self, detail: bool = True) -> Iterator[RoundRecord]:
        """Every durable generation round, streamed; ``detail=False`` drops the traces (the
        summaries finalise holds in memory)."""
        for rec in self.iter_records():
            yield RoundRecord.from_dict(rec if detail else {**rec, "detail": None})

    def rounds(self, detail: bool = True) -> dict[str, list[RoundRecord]]:
        """Each seed's durable rounds in round order (the first line of a round wins)."""
        return by_seed(self.round_records(detail))

    def rounds_of(self, seed_id: str) -> list[RoundRecord]:
        """One seed's durable rounds in round order (see ``seed_rounds``)."""
        return first_rounds(RoundRecord.from_dict(r) for r in self.seed_rounds(seed_id))

    def questions(self) -> dict[str, QuestionRecord]:
        """An evaluation's answered questions by id (the first record of a question wins)."""
        out: dict[str, QuestionRecord] = {}
        for rec in self.iter_records():
            out.setdefault(rec["qid"], QuestionRecord.from_dict(rec))
        return out

    # -- derived artifacts ----------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        _atomic_write_bytes(p, json.dumps(obj, indent=2, default=str).encode())
        return p

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        """Write JSON lines atomically, streaming (``rows`` may be a generator)."""
        p = self.path / name
        tmp = p.with_name(f".{p.name}.tmp")
        with tmp.open("wb") as fh:
            for r in rows:
                fh.write((json.dumps(r, default=str, ensure_ascii=False) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        return p

    def write_parquet(self, name: str, df: pl.DataFrame) -> Path:
        p = self.path / name
        tmp = p.with_name(f".{p.name}.tmp")
        df.write_parquet(tmp)
        os.replace(tmp, p)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path / name
        _atomic_write_bytes(p, text.encode())
        return p

    def mark_latest(self) -> None:
        """Point runs/latest at this run (a symlink; a text file where links are unsupported)."""
        link = self.runs_dir / LATEST
        tmp = self.runs_dir / f".{LATEST}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        try:
            tmp.symlink_to(self.run_id, target_is_directory=True)
        except OSError:
            tmp.write_text(self.run_id + "\n")
        os.replace(tmp, link)


def latest_in(runs_dir: Path) -> Path | None:
    """The directory ``runs_dir/latest`` points at (a symlink or a text file), if any."""
    link = Path(runs_dir) / LATEST
    if link.is_dir():
        return link.resolve()
    if link.is_file():
        target = link.parent / link.read_text().strip()
        return target if target.is_dir() else None
    return None


def resolve_run_dir(path: Path) -> Path:
    """Accept a run directory or runs/latest; error clearly when it is not a run."""
    p = Path(path)
    if p.is_file() and p.name == LATEST:
        p = p.parent / p.read_text().strip()
    if not (p / MANIFEST).exists():
        raise SageError(f"{p}: not a sage run directory (no {MANIFEST})")
    return p.resolve()
