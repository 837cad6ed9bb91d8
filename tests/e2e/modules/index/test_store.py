"""The vector-store contract, run against both backends: Qdrant Edge (embedded, the default)
and the server backend (qdrant-client; here talking to qdrant-client's in-process engine,
as no Qdrant server binary exists on this machine: the same API calls a server answers)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from modules.errors import SageError
from modules.index import store
from modules.index.embeddings import SparseVec
from tests.helpers import REPO


def _points(n: int, seed: int = 0) -> list[store.StorePoint]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [
        store.StorePoint(str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")),
                         {"pid": f"d{i}#0", "doc_id": f"d{i}", "title": f"T{i}", "text": f"t{i}"},
                         vecs[i].tolist(), SparseVec([i, 1000 + i % 7], [1.0, 0.5]))
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(params=["edge", "server"])
def vs(request, tmp_path):
    if request.param == "edge":
        from modules.index.edge_store import EdgeStore

        s = EdgeStore(tmp_path / "store")
    else:
        from qdrant_client import QdrantClient

        from modules.index.server_store import ServerStore

        s = ServerStore("http://in-process", client=QdrantClient(location=":memory:"))
    yield s
    s.close()


def test_versions_switch_atomically_and_old_ones_are_pruned(vs):
    pts = _points(50)
    for h in ("a", "b", "c"):
        vs.create_version(f"t@{h}", {"source": h})
        vs.upsert(f"t@{h}", pts)
        assert not vs.is_complete(f"t@{h}")
        vs.mark_complete(f"t@{h}")
        vs.swap_alias("t", f"t@{h}")
        assert store.resolve(vs, "t") == f"t@{h}" and vs.count(f"t@{h}") == 50
    assert store.prune_versions(vs, "t", keep=2) == ["t@a"]
    assert [v for v, _ in vs.versions("t")] == ["t@b", "t@c"]
    with pytest.raises(SageError, match="collection 'nope' not found; run `sage index"):
        store.resolve(vs, "nope")


def test_dense_sparse_and_hybrid_find_the_right_point_and_vectors_round_trip(vs):
    pts = _points(200)
    vs.create_version("t@1", {})
    vs.upsert("t@1", pts)
    vs.mark_complete("t@1")
    target = pts[42]
    assert vs.query("t@1", target.dense, None, 3)[0].id == target.id
    assert vs.query("t@1", None, SparseVec([42], [1.0]), 3)[0].id == target.id
    hybrid = vs.query("t@1", target.dense, SparseVec([42], [1.0]), 3)
    assert hybrid[0].id == target.id and hybrid[0].payload["doc_id"] == "d42"
    assert hybrid[0].score >= hybrid[1].score
    back = {p.id: p for p in vs.retrieve("t@1", [pts[1].id, pts[2].id])}
    assert back[pts[1].id].sparse == pts[1].sparse
    assert np.allclose(back[pts[1].id].dense, pts[1].dense, atol=1e-6)
    everything = [p for batch in vs.scroll("t@1", batch=64) for p in batch]
    assert len(everything) == 200 and {p.id for p in everything} == {p.id for p in pts}


def test_edge_shards_are_read_by_several_processes_at_once(tmp_path):
    """A complete version is immutable and has no write-ahead log: two other processes load
    and query it while this one holds it open (what Dask workers do)."""
    from modules.index.edge_store import EdgeStore

    root = tmp_path / "store"
    vs = EdgeStore(root)
    pts = _points(300)
    vs.create_version("t@1", {})
    vs.upsert("t@1", pts)
    vs.mark_complete("t@1")
    vs.swap_alias("t", "t@1")
    assert vs.query("t@1", pts[7].dense, None, 1)[0].id == pts[7].id  # held open here
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from modules.index import store;"
        "vs = store.open_store(sys.argv[2]); v = store.resolve(vs, 't');"
        "vec = json.loads(sys.argv[3]);"
        "print(json.dumps([vs.count(v)] + [vs.query(v, vec, None, 1)[0].id for _ in range(200)]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(REPO), str(root),
                          json.dumps(pts[i].dense)], stdout=subprocess.PIPE, text=True)
        for i in (11, 99)
    ]  # fmt: skip
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0][0] == outs[1][0] == 300
    assert set(outs[0][1:]) == {pts[11].id} and set(outs[1][1:]) == {pts[99].id}


def test_an_old_local_mode_index_gets_a_one_line_message(tmp_path):
    """An index written by qdrant-client's local mode (sage before Qdrant Edge)."""
    from qdrant_client import QdrantClient, models

    old = tmp_path / ".sage" / "qdrant"
    client = QdrantClient(path=str(old))
    client.create_collection("wiki@abc", vectors_config={
        "dense": models.VectorParams(size=4, distance=models.Distance.COSINE)})  # fmt: skip
    client.close()
    sage = str(Path(sys.executable).parent / "sage")
    res = subprocess.run([sage, "search", "anything", "--collection", "wiki"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "older sage (qdrant-client local mode)" in lines[0]
    assert "run `sage index CORPUS --collection NAME` again" in lines[0]
