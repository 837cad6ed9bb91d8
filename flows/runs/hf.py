"""The Hugging Face export: parquet files ``load_dataset("parquet", ...)`` reads, a
``datasets.DatasetDict`` saved with ``save_to_disk``, a dataset card, and the upload.

``datasets`` and ``huggingface_hub`` come with the optional extra ``sage-deepsearch[hub]``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from modules.errors import SageError

HUB_EXTRA = "pip install 'sage-deepsearch[hub]'"
HUB_FILES = ("README.md", "data/*.parquet")  # what --push-to-hub uploads
DATASET_DICT = "dataset_dict"
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


CARD = """
# sage deep-search QA: run `{run_id}`

Question/answer pairs made by sage with the SAGE method: a generator wrote each pair from a
seed document, a search agent tried it K times without seeing the document, and a judge
kept pairs some attempt answered, needing at least S searches.

{table}
## Licence

The questions and answers are derived from the text of the corpus `{collection}`: they
carry that corpus's licence and terms. The `license` field above is `{license_id}`; set it
with `sage export --license` to the corpus's licence before sharing.

## Use

```python
from datasets import load_dataset, load_from_disk
ds = load_dataset("parquet", data_files={files})
ds = load_from_disk("{dataset_dict}")  # the same DatasetDict
ds = load_dataset("ORG/NAME")  # once pushed with sage export --push-to-hub ORG/NAME
```

Columns: `id`, `question`, `answer` (the gold), `aliases`, `answer_type`, `target_steps`
(S), `min_searches` (fewest searches of a correct attempt), `pass_at_k`, `n_correct`,
`attempts`, `avg_at_k`, `round_accepted`, `seed_doc_id`, `supporting_ids`, `verified`,
`relaxed`.
"""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise SageError(f"--format hf needs the `datasets` package: {HUB_EXTRA}") from exc
    return datasets


def write_hf(target: Path, parts: dict[str, pl.DataFrame]) -> dict[str, str]:
    """``data/<split>.parquet`` per split and the DatasetDict in ``dataset_dict/``."""
    datasets = _datasets()
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()

    (target / "data").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, frame in parts.items():
        path = target / "data" / f"{split}.parquet"
        frame.write_parquet(path)
        paths[split] = str(path)
    dd = datasets.DatasetDict(
        {split: datasets.Dataset(pq.read_table(path)) for split, path in paths.items()}
    )
    dd.save_to_disk(str(target / DATASET_DICT))
    return paths


def _yaml_list(key: str, values: list[str]) -> str:
    return f"{key}:\n" + "".join(f"- {v}\n" for v in values)


def card_header(splits: list[str], license_id: str, pretty_name: str) -> str:
    """The card's YAML: licence, tags and the parquet files of each split."""
    files = "".join(
        f"  - split: {s}\n    path: data/{s}.parquet\n" for s in splits
    )  # the Hub's viewer and load_dataset(ORG/NAME) read these
    return (
        f"---\nlicense: {license_id}\npretty_name: {pretty_name}\n"
        + _yaml_list("task_categories", ["question-answering"])
        + _yaml_list("tags", ["sage", "deep-search", "multi-hop", "search-agent", "synthetic"])
        + f"configs:\n- config_name: default\n  data_files:\n{files}---\n"
    )


def _distribution(values: list[Any]) -> str:
    counts = Counter(v for v in values if v is not None)
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "—"


def _funnel(metrics: dict[str, Any]) -> str:
    f = metrics.get("funnel") or {}
    keys = ("seeds", "generated", "ever_correct", "accepted")
    return " → ".join(f"{k.replace('_', ' ')} {f[k]}" for k in keys if k in f) or "—"


def dataset_card(
    manifest: dict[str, Any],
    metrics: dict[str, Any],
    parts: dict[str, pl.DataFrame],
    license_id: str,
    source: str,
) -> str:
    """README.md of the export: the run's manifest in brief, the funnel, the S distribution,
    the licence note and how to load it."""
    run_id = manifest.get("run_id", "?")
    p, models = manifest.get("params") or {}, manifest.get("models") or {}
    profile = (manifest.get("config") or {}).get("profile") or manifest.get("profile")
    items = pl.concat(list(parts.values())) if parts else pl.DataFrame()

    def col(name: str) -> list[Any]:
        return items[name].to_list() if name in items.columns else []

    rows = [
        (
            "generator / agent / judge",
            " / ".join(f"`{models.get(r, '?')}`" for r in ("generator", "agent", "judge")),
        ),
        ("profile", profile or "default"),
        ("corpus", f"`{p.get('collection', '?')}` version `{manifest.get('collection_version')}`"),
        (
            "attempts K / rounds / strategy",
            f"{p.get('attempts', '?')} / {p.get('rounds', '?')} / {p.get('strategy', '?')}",
        ),
        ("splits", ", ".join(f"{s} {f.height}" for s, f in parts.items())),
        ("funnel", _funnel(metrics)),
        ("target S", _distribution(col("target_steps"))),
        ("min searches", _distribution(col("min_searches"))),
        ("answer types", _distribution(col("answer_type"))),
        ("source", f"`{Path(source).name}`, git `{manifest.get('git_commit') or '?'}`"),
    ]
    table = "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    files = ", ".join(f'"{s}": "data/{s}.parquet"' for s in parts)
    return card_header(list(parts), license_id, f"sage deep-search QA ({run_id})") + CARD.format(
        run_id=run_id,
        table=table,
        collection=p.get("collection", "?"),
        license_id=license_id,
        files="{" + files + "}",
        dataset_dict=DATASET_DICT,
    )


def hub_files(target: Path) -> list[str]:
    """The files --push-to-hub uploads from an hf export (``HUB_FILES``), relative paths."""
    return sorted(
        str(p.relative_to(target)) for pattern in HUB_FILES for p in Path(target).glob(pattern)
    )


def push_to_hub(target: Path, repo: str, private: bool) -> str:
    """Upload the card and the parquet files to the dataset repo ``repo`` (created if
    missing); return its URL. The token is huggingface_hub's (``HF_TOKEN``, ``hf auth
    login``)."""
    if not _REPO.fullmatch(repo):
        raise SageError(f"--push-to-hub {repo!r}: use ORG/NAME")
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise SageError(f"--push-to-hub needs the `huggingface_hub` package: {HUB_EXTRA}") from exc
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(target),
        repo_id=repo,
        repo_type="dataset",
        allow_patterns=list(HUB_FILES),
        commit_message="sage export",
    )
    return f"https://huggingface.co/datasets/{repo}"
