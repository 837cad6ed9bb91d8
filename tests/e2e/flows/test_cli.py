"""The `sage` console command: help everywhere, JSON summaries, one-line errors, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAGE = str(Path(sys.executable).parent / "sage")


def run(*args: str, env: dict | None = None, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    full_env.update(env or {})
    return subprocess.run(
        [SAGE, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def test_top_level_help_lists_the_contract_commands():
    res = run("--help")
    assert res.returncode == 0, res.stderr
    for cmd in ("demo", "models", "index", "generate", "export", "config"):
        assert cmd in res.stdout


@pytest.mark.parametrize(
    "sub",
    [
        ["models", "pull"],
        ["models", "verify"],
        ["models", "list"],
        ["config"],
        ["demo"],
        ["generate"],
        ["export"],
        ["index"],
    ],
)
def test_every_subcommand_has_help(sub):
    res = run(*sub, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout and "--help" in res.stdout


def test_models_list_json(tmp_path):
    res = run("models", "list", "--json", env={"SAGE_MODELS_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["models"]
    assert {r["key"] for r in rows} == {"llm", "llm15", "embedder"}
    assert not any(r["installed"] for r in rows)  # empty models dir


def test_config_json_hides_secrets(tmp_path):
    res = run("--lm", "openai/gpt-4o-mini", "config", "--json",
              env={"SAGE_API_KEY": "sk-hidden"}, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["lm"] == "openai/gpt-4o-mini"
    assert "sk-hidden" not in res.stdout
    assert (data["api_key"], data["qdrant_api_key"]) == ("set", "unset")  # picked up or not
    res = run("config", cwd=tmp_path)
    assert "api_key = unset" in res.stdout


def test_bad_config_file_is_one_line_error_naming_field(tmp_path):
    (tmp_path / "sage.toml").write_text("n_ctx = 12\n")
    res = run("config", cwd=tmp_path)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sage: error:") and "n_ctx" in lines[0]


def test_unknown_option_is_usage_error():
    res = run("models", "list", "--frobnicate")
    assert res.returncode == 2
    assert "frobnicate" in res.stderr


def test_models_verify_on_empty_dir_fails_with_reason(tmp_path):
    res = run("models", "verify", env={"SAGE_MODELS_DIR": str(tmp_path)})
    assert res.returncode == 1
    assert "sage models pull" in res.stderr


@pytest.mark.parametrize(
    "args, msg, code",
    [
        (["--seeds", "1", "--steps", "9-3"], "--steps '9-3': the range is empty", 1),
        (["--steps", "2"], "exactly one of --n", 1),
        (["--seeds", "1", "--attempts", "0"], "--attempts: Input should be greater", 1),
        (["--seeds", "1", "--strategy", "greedy"], "'greedy' is not one of", 2),  # usage
        (["--seeds", "1", "--frob"], "No such option: --frob (see sage generate --help)", 2),
    ],
)
def test_generate_rejects_bad_options_before_starting(tmp_path, args, msg, code):
    res = run("generate", *args, cwd=tmp_path)
    assert res.returncode == code
    assert res.stderr.strip().splitlines() == [
        f"sage: error: {res.stderr.split('error: ')[1].strip()}"
    ]
    assert msg in res.stderr and not (tmp_path / "runs").exists()


def test_export_of_a_non_run_names_the_directory(tmp_path):
    res = run("export", str(tmp_path))
    assert res.returncode == 1 and f"{tmp_path}: not a sage run directory" in res.stderr


def test_judge_writes_one_verdict_per_case_in_input_order(tmp_path):
    cases = tmp_path / "cases.jsonl"
    rows = [
        {"question": "Who?", "gold": "Jessie Woodrow Wilson", "response": "Woodrow Wilson"},
        {"question": "Where?", "gold": "Ilvaro", "aliases": ["Ilvaro Isle"],
         "response": "Ilvaro isle."},
        {"question": "How many?", "gold": "820 metres", "response": "640 metres"},
        {"question": "When?", "gold": "1642", "response": ""},
    ]  # fmt: skip
    cases.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run("judge", str(cases), "--no-llm")
    assert res.returncode == 0, res.stderr
    verdicts = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(v["line"], v["correct"], v["method"]) for v in verdicts] == [
        (1, False, "undecided"), (2, True, "exact"), (3, False, "number_guard"), (4, False, "empty")
    ]  # fmt: skip
    out = tmp_path / "verdicts.jsonl"
    res = run("judge", str(cases), "--no-llm", "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert [json.loads(x) for x in out.read_text().splitlines()] == verdicts
    assert json.loads(res.stdout)["by_method"]["exact"] == 1


def test_judge_names_the_malformed_line(tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"question": "q", "gold": "g", "response": "r"}\n{"question": "q", "gold"\n')
    res = run("judge", str(cases), "--no-llm")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sage: error: {cases}:2: malformed JSON")
    cases.write_text('{"question": "q", "response": "r"}\n')
    res = run("judge", str(cases), "--no-llm")
    assert res.stderr.strip() == f"sage: error: {cases}:1: field 'gold': missing"
