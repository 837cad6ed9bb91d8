"""The one reader of "a JSON list or JSON lines" files (modules/json_records.py), and the two
loaders that use it: eval sets to decontaminate against and MuSiQue QA sets."""

from __future__ import annotations

import json

import pytest

from flows.data.qa_sets import load_musique, load_plain
from modules.checks.eval_sets import load_evals
from modules.errors import SageError
from modules.json_records import json_lines, json_records

RECS = [{"id": "2hop__1", "question": "Who?", "answer": "Ada"}, {"id": "3hop__2",
        "question": "When?", "answer": "1882", "answer_aliases": ["in 1882"]}]  # fmt: skip


def _lines(path, recs, blank=True):
    text = "\n".join(json.dumps(r) for r in recs)
    path.write_text(("\n" if blank else "") + text.replace("}\n{", "}\n\n{") + "\n")
    return path


def test_a_list_and_lines_give_the_same_records_with_where_they_are(tmp_path):
    listed = tmp_path / "m.json"
    listed.write_text("  \n" + json.dumps(RECS, indent=1))
    lines = _lines(tmp_path / "m.jsonl", RECS)
    assert [(w, r, i) for w, r, i in json_records(listed)] == [
        (f"{listed}[0]", RECS[0], 0),
        (f"{listed}[1]", RECS[1], 1),
    ]
    assert [(w, r, i) for w, r, i in json_records(lines)] == [
        (f"{lines}:2", RECS[0], 2),
        (f"{lines}:4", RECS[1], 4),
    ]
    assert list(json_lines(lines)) == list(json_records(lines))


def test_invalid_json_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECS[0]) + "\n{not json\n")
    with pytest.raises(SageError, match=r"bad.jsonl:2: invalid JSON"):
        list(json_records(bad))
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"id": 1},\n  {"id": \n]\n')
    with pytest.raises(SageError, match=r"broken.json:4: invalid JSON"):
        list(json_records(broken))
    listed = tmp_path / "list.jsonl"
    listed.write_text(json.dumps(RECS) + "\n")
    with pytest.raises(SageError, match=r"list.jsonl:1: "):
        load_plain(listed)  # plain QA sets are JSON lines only, as before


def test_both_loaders_read_a_list_and_lines_alike(tmp_path):
    listed = tmp_path / "m.json"
    listed.write_text(json.dumps(RECS))
    lines = _lines(tmp_path / "m.jsonl", RECS, blank=False)
    for path in (listed, lines):
        qa = load_musique(path)
        assert [(q.id, q.group, q.answers) for q in qa] == [
            ("2hop__1", "2hop", ["Ada"]),
            ("3hop__2", "3hop", ["1882", "in 1882"]),
        ]
        evals = load_evals([path])
        assert [(e.id, e.answers) for e in evals] == [
            ("2hop__1", ("Ada",)),
            ("3hop__2", ("1882", "in 1882")),
        ]
    with pytest.raises(SageError, match=r"m.json\[1\]: missing field 'answer'"):
        listed.write_text(json.dumps([RECS[0], {"id": "x", "question": "Q?"}]))
        load_musique(listed)
