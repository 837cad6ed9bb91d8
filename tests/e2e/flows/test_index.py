"""index_corpus end to end: real embedded Qdrant (Edge), real fastembed, real Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from modules.errors import SageError
from modules.index import store
from tests.helpers import DEMO_CORPUS

DOCS = {
    "volcano": ("Mount Arvel", "Mount Arvel is an active volcano that last erupted in 1921."),
    "river": ("Lissen River", "The Lissen River flows through the capital and feeds the lake."),
    "bread": ("Saltbread", "Saltbread is a flat loaf baked with sea salt in clay ovens."),
    "ferry": ("Northern ferry", "A ferry links the two islands every morning at six o'clock."),
    "choir": ("Harbour choir", "The harbour choir sings old sailing songs each midsummer."),
}


def _write(path: Path, docs: dict[str, tuple[str, str]], bad: bool = False) -> Path:
    lines = [json.dumps({"id": k, "title": t, "text": x}) for k, (t, x) in docs.items()]
    if bad:
        lines += ['{"id": "broken", "text": ', json.dumps({"id": "empty", "text": ""})]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    from modules.settings import Settings

    root = tmp_path_factory.mktemp("index")
    settings = Settings(data_dir=root / "data", models_dir=models_dir, collection="t")
    yield root, settings
    store.close_store(settings.qdrant_location)


def _run(settings, path: Path, **kw):
    from flows.index import IndexParams, index_corpus

    overrides = {k: str(getattr(settings, k)) for k in ("data_dir", "models_dir", "collection")}
    params = IndexParams(path=str(path), chunk_words=12, overlap_words=4, **kw)
    return index_corpus(params, overrides)


def test_index_incremental_alias_and_search(env) -> None:
    from modules.index.retriever import open_retriever

    root, settings = env
    corpus = _write(root / "c.jsonl", DOCS, bad=True)
    with pytest.raises(SageError, match=r"c\.jsonl:6: field '\*': malformed JSON"):
        _run(settings, corpus)

    first = _run(settings, corpus, on_error="skip")
    assert (first["documents"], first["rejects"], first["embedded"]) == (5, 2, first["passages"])
    assert first["passages"] == 5  # every text fits one 12-word window
    rejects = [json.loads(x) for x in Path(first["rejects_file"]).read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(6, "*"), (7, "text")]
    vs = store.open_store(settings.qdrant_location)
    assert vs.alias_target("t") == first["version"]
    assert vs.count(store.resolve(vs, "t")) == first["passages"]

    again = _run(settings, corpus, on_error="skip")  # idempotent: nothing embedded, same version
    assert again["version"] == first["version"] and again["embedded"] == 0
    assert vs.count(store.resolve(vs, "t")) == first["passages"]

    changed = dict(DOCS)
    del changed["choir"]
    changed["river"] = ("Lissen River", "The Lissen River is frozen for three months a year.")
    changed["mine"] = ("Copper mine", "The old copper mine at Dunmarra closed in 1962.")
    second = _run(settings, _write(root / "c.jsonl", changed))
    assert second["version"] != first["version"] and second["previous"] == first["version"]
    assert (second["embedded"], second["reused"], second["deleted"]) == (2, 3, 2)
    assert vs.alias_target("t") == second["version"]
    assert vs.count(second["version"]) == 5
    assert vs.is_complete(first["version"])  # kept (keep_versions=2)
    docs = {p.payload["doc_id"] for b in vs.scroll(second["version"]) for p in b}
    assert docs == {"volcano", "river", "bread", "ferry", "mine"}

    hybrid = open_retriever(settings, "t", mode="hybrid", k=3)
    hits = hybrid.search("When did the volcano last erupt?")
    assert hits[0].doc_id == "volcano" and hits[0].title == "Mount Arvel" and len(hits) == 3
    assert hits[0].id.startswith("volcano#0-")
    assert hybrid.search("copper mine closed", k=1)[0].doc_id == "mine"
    assert open_retriever(settings, "t", mode="sparse").search("frozen months")[0].doc_id == "river"
    assert open_retriever(settings, "t", mode="dense").search("baking loaves")[0].doc_id == "bread"
    assert not any(h.doc_id == "choir" for h in hybrid.search("choir sings songs", k=5))

    back = _run(settings, _write(root / "c.jsonl", DOCS))  # rollback: version still complete
    assert back["version"] == first["version"] and back["embedded"] == 0
    assert vs.alias_target("t") == first["version"]

    more = {**DOCS, "mill": ("Wind mill", "A wind mill grinds barley on the hill.")}
    fourth = _run(settings, _write(root / "c.jsonl", more), keep_versions=2)
    assert fourth["embedded"] == 1 and fourth["pruned"] == [second["version"]]
    names = {c for c, _ in vs.versions("t")}
    assert names == {first["version"], fourth["version"]}
    assert vs.alias_target("t") == fourth["version"]
    assert not (Path(settings.qdrant_location) / "shards" / second["version"]).exists()


def test_cli_index_splits_long_documents(env) -> None:
    from typer.testing import CliRunner

    from flows.cli import index as cli_index
    from flows.cli.options import Ctx

    root, settings = env
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = Ctx({"data_dir": settings.data_dir, "models_dir": settings.models_dir})

    cli_index.register(app)
    long_text = " ".join(f"word{i}" for i in range(30)) + " lighthouse keeper"
    path = _write(root / "long.jsonl", {"long": ("Lighthouse", long_text)})
    args = ["index", str(path), "--collection", "long", "--chunk-words", "12"]
    res = CliRunner().invoke(app, [*args, "--overlap-words", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    vs = store.open_store(settings.qdrant_location)
    points = [p for b in vs.scroll(store.resolve(vs, "long")) for p in b]
    assert out["passages"] == len(points) == 4  # 32 words, 12-word windows, stride 8
    assert {p.payload["title"] for p in points} == {"Lighthouse"}
    assert len({p.payload["pid"] for p in points}) == 4

    bad = CliRunner().invoke(app, ["index", str(path), "--on-error", "maybe"])
    assert bad.exit_code == 2 and "'maybe' is not one of" in bad.output  # a usage error


def test_query_vectors_are_cached_compactly(models_dir: Path) -> None:
    """The query cache holds up to 2,048 vectors: as float32 arrays (1.5 KB), not lists of
    Python floats (12 KB each, which grew a 500-seed run by 13 KB per LM call)."""
    from modules.index import embeddings

    vec = embeddings.query_dense(models_dir, "when did Mount Arvel last erupt")
    direct = next(
        iter(embeddings.dense_model(models_dir).query_embed("when did Mount Arvel last erupt"))
    )
    assert len(vec) == 384 and max(abs(a - b) for a, b in zip(vec, direct, strict=True)) < 1e-6
    cached = embeddings._query_dense_f32(models_dir, "when did Mount Arvel last erupt")
    assert cached.dtype.name == "float32" and cached.nbytes == 384 * 4


DEMO = DEMO_CORPUS


def test_a_long_document_is_embedded_a_batch_at_a_time(env, monkeypatch) -> None:
    """One document of the demo corpus's texts joined (~8,000 words, ~1,000 passages) with
    batch_size 16: the embedder never gets more than 16 texts, and while a batch is embedded
    at most a few batches' passages exist (not the document's ~1,000 at once)."""
    import gc

    from flows import index
    from modules.index.corpus import PassageRecord

    root, settings = env
    texts = [json.loads(line)["text"] for line in DEMO.read_text().splitlines() if line.strip()]
    path = _write(root / "one.jsonl", {"one": ("Tarvessa", " ".join(texts))})
    sizes, alive = [], []
    real = index.embeddings.embed_dense

    def embed_dense(models_dir, batch):  # the real embedder, watched
        sizes.append(len(batch))
        alive.append(sum(isinstance(o, PassageRecord) for o in gc.get_objects()))
        return real(models_dir, batch)

    monkeypatch.setattr(index.embeddings, "embed_dense", embed_dense)
    out = _run(settings, path, collection="onedoc", batch_size=16)
    assert out["passages"] > 800 and out["embedded"] == out["passages"]
    assert sum(sizes) == out["passages"] and max(sizes) == 16
    assert max(alive) <= 3 * 16, f"{max(alive)} passages alive at once"
    vs = store.open_store(settings.qdrant_location)
    assert vs.count(store.resolve(vs, "onedoc")) == out["passages"]


def test_index_tasks_retry_transient_errors_only(env, monkeypatch) -> None:
    """The index tasks share the flows' retry policy (flows/engine/retrying.py): a bad-input
    SageError in a task is raised after one attempt, not retried."""
    from flows import index
    from flows.engine.retrying import is_transient

    for t in (index.existing_ids_task, index.copy_task, index.embed_task):
        assert t.retries >= 1 and t.retry_condition_fn is is_transient, t.name
    root, settings = env
    _run(settings, _write(root / "r.jsonl", DOCS), collection="retry")
    vs = store.open_store(settings.qdrant_location)
    version = store.resolve(vs, "retry")
    ids = [p.id for b in vs.scroll(version, payload=False) for p in b][:2]
    opened = []
    real = index.store.open_store

    def open_store(*args):  # the real store, its openings counted (one per attempt)
        opened.append(args)
        return real(*args)

    monkeypatch.setattr(index.store, "open_store", open_store)
    with pytest.raises(SageError, match="complete and read-only"):
        index.copy_task(settings.qdrant_location, None, version, version, ids)
    assert len(opened) == 1
