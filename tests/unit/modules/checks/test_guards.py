"""Near-duplicates in tiles, eval-set loading and its one-line errors, decontamination rules,
the solver checks (scripted solver, named as such) and the export flags."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from modules.checks import dedup, flags
from modules.checks.decontam import NgramIndex, contamination, embedding_matches
from modules.checks.eval_sets import EvalItem, load_evals
from modules.checks.solver_checks import SolverChecks, supporting_notes
from modules.errors import SageError
from modules.programs.judge import Judge
from tests.helpers import REPO, RuleLM

SHARED = REPO.parent / "shared" / "data" / "qa"


def brute(vecs: np.ndarray, thr: float, first: int = 0) -> list[tuple[int, int]]:
    m = dedup.unit_rows(vecs)
    sims = m @ m.T
    out = []
    for j in range(max(first, 1), len(m)):
        i = int(np.argmax(sims[j, :j]))
        if sims[j, i] >= thr:
            out.append((j, i))
    return out


@pytest.mark.parametrize("rows, cols", [(7, 5), (64, 1024), (1, 3)])
def test_tiled_near_duplicates_equal_the_full_matrix(rows, cols):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    vecs = np.vstack([base, base[[3, 9, 30]] + 0.01 * rng.normal(size=(3, 16))])
    found = dedup.near_duplicates(vecs, 0.95, rows=rows, cols=cols)
    assert [(d.index, d.of) for d in found] == brute(vecs, 0.95) == [(40, 3), (41, 9), (42, 30)]
    late = dedup.near_duplicates(vecs, 0.95, first=41, rows=rows, cols=cols)
    assert [(d.index, d.of) for d in late] == [(41, 9), (42, 30)]  # earlier ones never flagged
    assert dedup.near_duplicates(vecs[:1], 0.5) == [] and dedup.near_duplicates([], 0.5) == []


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_eval_formats_are_recognised_per_record(tmp_path):
    _write(
        tmp_path / "hp.jsonl",
        [{"question_id": "h1", "question_text": "Q one?", "answers_objects": [{"spans": ["A1"]}]}],
    )
    (tmp_path / "mu.json").write_text(
        json.dumps(
            [{"id": "2hop__1", "question": "Q two?", "answer": "A2", "answer_aliases": ["B2"]}]
        )
    )
    pl.DataFrame({"question": ["Q three?"], "answer": ["A3"]}).write_parquet(tmp_path / "p.parquet")
    (tmp_path / "notes.txt").write_text("not an eval file")
    items = load_evals([tmp_path])
    assert [(i.id, i.question, i.answers) for i in items] == [
        ("h1", "Q one?", ("A1",)),
        ("2hop__1", "Q two?", ("A2", "B2")),
        ("1", "Q three?", ("A3",)),
    ]
    assert items[0].file == str(tmp_path / "hp.jsonl")


@pytest.mark.parametrize(
    "record, message",
    [
        ({"query": "x"}, ":2: field 'question': missing"),
        ({"question": "Q?"}, ":2: field 'answer': missing or empty"),
        ({"question_text": "Q?"}, ":2: field 'answers_objects': missing"),
        ({"question": " ", "answer": "A"}, ":2: field 'question': empty"),
    ],
)
def test_bad_eval_records_name_file_line_and_field(tmp_path, record, message):
    path = _write(tmp_path / "e.jsonl", [{"question": "ok?", "answer": "a"}, record])
    with pytest.raises(SageError, match=re.escape(f"{path}{message}")):
        load_evals([path])


def test_unknown_eval_files(tmp_path):
    (tmp_path / "e.csv").write_text("question,answer\n")
    with pytest.raises(SageError, match="unknown eval format"):
        load_evals([tmp_path / "e.csv"])
    with pytest.raises(SageError, match="no such eval file"):
        load_evals([tmp_path / "missing.jsonl"])
    (tmp_path / "bad.jsonl").write_text('{"question": "a", "answer": "b"}\n{oops\n')
    with pytest.raises(SageError, match=re.escape(f"{tmp_path / 'bad.jsonl'}:2: invalid JSON")):
        load_evals([tmp_path / "bad.jsonl"])


EV = [
    EvalItem(
        "e.jsonl",
        "e1",
        "What government position was held by the woman who portrayed "
        "Corliss Archer in the film Kiss and Tell?",
        ("Chief of Protocol",),
    ),
    EvalItem("e.jsonl", "e2", "Who founded Brennick?", ("Ada Venn",)),
    EvalItem("e.jsonl", "e3", "In which year did the Skellis lighthouse open?", ("1881",)),
]


def test_ngram_rule_catches_reworded_copies_not_shared_phrases():
    index = NgramIndex(EV, 8)
    reworded = (
        "Which government position was held by the woman who portrayed Corliss "
        "Archer in the movie Kiss and Tell?"
    )
    assert index.match(reworded) == 0
    assert index.match("In which year did the Skellis lighthouse open to ships?") == 2  # short
    assert index.match("Who held the position of the woman who portrayed a role?") is None
    assert index.match("Who founded Brennick's rival town?") is None  # 3 tokens: too short


def test_embedding_rule_needs_the_same_answer():
    items = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], dtype=np.float32)
    evals = np.array([[1.0, 0.0]], dtype=np.float32)
    found = embedding_matches(
        items, ["the Chief of Protocol", "Ambassador", "x"], evals, [("Chief of Protocol",)], 0.9
    )
    assert list(found) == [0] and found[0][0] == 0
    out = contamination(["Q?"], ["Chief of Protocol"], EV[:1], items[:1], evals)
    assert out[0].rule == "embedding" and (out[0].file, out[0].id) == ("e.jsonl", "e1")


def solver_rule(prompt: str) -> dict:
    """Scripted solver: answers from a passage that names Port Caskel; never from memory."""
    if "answer_from_passage" in prompt:
        passage = prompt.split("[[ ## passage ## ]]", 1)[-1]
        return {"answer_from_passage": "Port Caskel" if "Port Caskel" in passage else "unknown"}
    return {"answer_from_memory": "unknown"}


def test_solver_checks_record_the_passage_that_sufficed_and_count_calls():
    lm = RuleLM(solver_rule)
    checks = SolverChecks(lm, Judge(lm))
    notes = [
        {"id": "seed#0", "title": "Seed", "text": "Ada Venn was a composer."},
        {"id": "x#0", "title": "X", "text": "Unrelated."},
        {"id": "pc#0", "title": "Harbour", "text": "She grew up in Port Caskel."},
    ]
    item = {
        "question": "Where did the composer grow up?",
        "answer": "Port Caskel",
        "supporting_ids": ["seed#0", "pc#0"],
    }
    picked = supporting_notes(item, notes)
    assert [n["id"] for n in picked] == ["seed#0", "pc#0"]  # the seed first, x#0 unused
    res = checks(item, picked)
    assert (res.single_passage, res.passages_tried, res.closed_book) == ("pc#0", 2, False)
    assert res.meter["lm_calls"] == len(lm.prompts) == 3  # 2 passages + memory, no judge call
    only_memory = checks(item, picked, ("closed_book",))
    assert only_memory.single_passage is None and only_memory.passages_tried == 0


def test_export_flags_and_keep():
    assert flags.drops() == list(flags.DROPPED) and "solver_disagree" in flags.drops(agree=True)
    assert flags.kept({"flag_closed_book": True}, ["closed_book"]) is False
    assert flags.kept({"flag_closed_book": True}, ["single_passage"]) is True
    with pytest.raises(SageError, match="--keep nope: not a flag"):
        flags.check_keep(["closed_book", "nope"])


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data")
def test_real_hotpotqa_and_musique_files_load():
    items = load_evals([SHARED / "hotpotqa_dev_250.jsonl", SHARED / "musique_train_100.json"])
    assert len(items) == 350 and all(i.answers for i in items)
