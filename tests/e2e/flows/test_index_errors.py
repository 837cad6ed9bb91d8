"""Bad input to `sage index`, as a person sees it: with --on-error fail exactly one line on
stderr naming file, line and field, exit 1, and Prefect's log in the log file; with skip the
good records are indexed and every bad one (and every skipped file) is counted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import SAGE, clean_env

GOOD = {"id": "g1", "title": "Good", "text": "Brennick is the capital of Tarvessa."}


def sage(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = clean_env()
    return subprocess.run(
        [SAGE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def jsonl(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def good() -> str:
    return json.dumps(GOOD)


def make(kind: str, d: Path) -> tuple[Path, str | None, dict]:
    """(input path, the expected error line after 'sage: error: ' with --on-error fail or
    None when the input is fine, the --json summary counts expected with skip)."""
    if kind == "malformed_json":
        p = jsonl(d / "c.jsonl", good(), '{"id": "b", "text": "no closing quote}')
        return p, f"{p}:2: field '*': malformed JSON: Unterminated string starting at at column 21", {"rejects": 1, "documents": 1}  # fmt: skip  # noqa: E501
    if kind == "empty_text":
        p = jsonl(d / "c.jsonl", good(), json.dumps({"id": "e", "text": "  "}))
        return p, f"{p}:2: field 'text': text is empty", {"rejects": 1, "documents": 1}
    if kind == "missing_field":
        p = jsonl(d / "c.jsonl", good(), json.dumps({"id": "m", "title": "no text"}))
        return p, f"{p}:2: field 'text': text is missing", {"rejects": 1, "documents": 1}
    if kind == "duplicate_id":
        p = jsonl(d / "c.jsonl", good(), json.dumps({**GOOD, "text": "Other text."}))
        msg = f"{p}:2: field 'id': duplicate id 'g1' with different text (first at {p}:1)"
        return p, msg, {"rejects": 1, "documents": 1}
    if kind == "invalid_utf8":
        p = jsonl(d / "c.jsonl", good(), b'{"id": "u", "text": "caf\xe9"}')
        msg = f"{p}:2: field '*': not UTF-8 (invalid continuation byte)"
        return p, msg, {"rejects": 1, "documents": 1}
    if kind == "empty_file":
        p = d / "c.jsonl"
        p.write_bytes(b"")
        return p, f"{p}: no valid documents to index (0 rejected)", {}
    if kind == "csv_missing_cell":
        p = d / "c.csv"
        p.write_text("id,title,text\ng1,Good,Brennick is the capital.\nm1,Missing,\n")
        return p, f"{p}:3: field 'text': text is missing", {"rejects": 1, "documents": 1}
    if kind == "parquet_missing_cell":
        p = d / "c.parquet"
        pl.DataFrame({"id": ["g1", "m1"], "title": ["Good", "Missing"],
                      "text": ["Brennick is the capital.", None]}).write_parquet(p)  # fmt: skip
        return p, f"{p}:2: field 'text': text is missing", {"rejects": 1, "documents": 1}
    if kind == "missing_path":
        p = d / "nowhere.jsonl"
        return p, f"{p}: no such file or directory", {}
    if kind == "folder_with_binary":
        folder = d / "docs"
        folder.mkdir()
        (folder / "a.txt").write_text("Brennick is the capital of Tarvessa.")
        (folder / "data.bin").write_bytes(b"\x00\xff\xfe binary")
        return folder, None, {"rejects": 0, "documents": 1, "skipped_files": 1}
    raise AssertionError(kind)


KINDS = ["malformed_json", "empty_text", "missing_field", "duplicate_id", "invalid_utf8",
         "empty_file", "csv_missing_cell", "parquet_missing_cell", "missing_path",
         "folder_with_binary"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_fail_mode_prints_exactly_one_line(kind, tmp_path, models_dir):
    path, expected, _ = make(kind, tmp_path)
    res = sage("index", str(path), "--collection", "c", "--on-error", "fail", cwd=tmp_path)
    if expected is None:
        assert res.returncode == 0, res.stderr
        assert res.stderr == "", res.stderr  # success: no Prefect log on the console
        return
    assert res.returncode == 1, res.stderr
    assert res.stderr.splitlines() == [f"sage: error: {expected}"], res.stderr
    log = tmp_path / ".sage" / "logs" / "sage.log"
    if kind != "missing_path":  # the flow ran and Prefect logged the failure to the file
        assert "Traceback" in log.read_text() or "Finished in state Failed" in log.read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_skip_mode_indexes_the_good_records_and_counts_the_bad(kind, tmp_path, models_dir):
    path, expected, counts = make(kind, tmp_path)
    res = sage("index", str(path), "--collection", "c", "--on-error", "skip", "--json",
               cwd=tmp_path)  # fmt: skip
    if not counts:  # nothing indexable: the same one line as with fail, exit 1
        assert res.returncode == 1, res.stderr
        assert res.stderr.splitlines() == [f"sage: error: {expected}"], res.stderr
        return
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    summary = json.loads(res.stdout)
    assert {k: summary[k] for k in counts} == counts
    if counts["rejects"] or counts.get("skipped_files"):
        lines = Path(summary["rejects_file"]).read_text().splitlines()
        assert len(lines) == counts["rejects"] + counts.get("skipped_files", 0)
        if counts.get("skipped_files"):
            assert json.loads(lines[-1])["file"].endswith("data.bin")


def test_a_5_mb_document_is_split_not_refused(tmp_path, models_dir):
    words = " ".join(f"w{i % 5000}" for i in range(900_000))  # ~5.2 MB
    path = jsonl(tmp_path / "big.jsonl", json.dumps({"id": "big", "title": "Big", "text": words}))
    assert path.stat().st_size > 5_000_000
    res = sage("index", str(path), "--collection", "big", "--json", "--chunk-words", "4000",
               "--overlap-words", "0", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["documents"] == 1 and summary["passages"] == 225 and summary["rejects"] == 0
