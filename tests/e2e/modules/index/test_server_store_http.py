"""The server backend (`modules/index/server_store.py`) over HTTP: the real qdrant-client, in REST
mode, against a recording HTTP server on 127.0.0.1 that answers as Qdrant's REST API does.

No Qdrant server can run on this machine (no binary, no container runtime), so the server
backend is tested twice, and neither is a Qdrant server: `test_store.py` (beside this) runs the
store contract on qdrant-client's in-process engine (same client API, no HTTP), and this
file checks every request the backend sends over HTTP (method, path, body) and that it
reads Qdrant's answers right. The answers follow Qdrant's REST reference (the response
models of qdrant-client's `http/models`: `{"result": ..., "status": "ok", "time": ...}`);
ranking is plain dot products and rank fusion, enough to tell which point a query meant,
not Qdrant's index.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from bench.local_http import LocalJSONServer
from modules.index.embeddings import DENSE_DIM, SparseVec
from modules.index.server_store import ServerStore
from modules.index.store import DENSE, RRF_K, SPARSE, StorePoint, resolve


def _collection_info(spec: dict[str, Any], points: int) -> dict[str, Any]:
    """GET /collections/{name}: a CollectionInfo as Qdrant 1.20 answers it."""
    return {
        "status": "green", "optimizer_status": "ok", "segments_count": 1,
        "points_count": points, "indexed_vectors_count": 0, "payload_schema": {},
        "config": {
            "params": {"vectors": spec.get("vectors", {}),
                       "sparse_vectors": spec.get("sparse_vectors", {}),
                       "shard_number": 1, "replication_factor": 1,
                       "write_consistency_factor": 1, "on_disk_payload": True},
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                            "max_indexing_threads": 0, "on_disk": False},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "max_segment_size": None,
                                 "memmap_threshold": None, "indexing_threshold": 10000,
                                 "flush_interval_sec": 5, "max_optimization_threads": None},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
            "metadata": spec.get("metadata") or {},
        },
    }  # fmt: skip


class QdrantREST(LocalJSONServer):
    """Qdrant's REST API for what the server backend uses, in memory, recording requests."""

    keep_alive = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.collections: dict[str, dict[str, Any]] = {}  # name -> {spec, points}
        self.aliases: dict[str, str] = {}
        super().__init__()

    def sent(self, method: str, path: str) -> list[Any]:
        """The bodies of the recorded requests to ``method path``."""
        return [b for m, p, _, b in self.requests if (m, p) == (method, path)]

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        url = urlsplit(path)
        path = unquote(url.path)
        self.requests.append((method, path, parse_qs(url.query), body))
        parts = path.strip("/").split("/")
        try:
            result = self.route(method, parts, body)
        except KeyError as exc:
            return 404, {"status": {"error": f"Not found: {exc}"}, "time": 0.0}
        except (TypeError, ValueError) as exc:  # as Qdrant: a body it cannot read is a 400
            return 400, {"status": {"error": f"Format error in JSON body: {exc}"}, "time": 0.0}
        if method == "GET" and parts == [""]:
            return 200, result  # the root answers its version without the envelope
        return 200, {"result": result, "status": "ok", "time": 0.0001}

    def _name(self, name: str) -> str:
        return self.aliases.get(name, name)

    def route(self, method: str, parts: list[str], body: Any) -> Any:
        match method, parts:
            case "GET", [""]:
                return {"title": "qdrant - vector search engine", "version": "1.20.0",
                        "commit": "0" * 40}  # fmt: skip
            case "GET", ["aliases"]:
                return {"aliases": [{"alias_name": a, "collection_name": c}
                                    for a, c in self.aliases.items()]}  # fmt: skip
            case "POST", ["collections", "aliases"]:
                for action in body["actions"]:
                    if "delete_alias" in action:
                        del self.aliases[action["delete_alias"]["alias_name"]]
                    if "create_alias" in action:
                        a = action["create_alias"]
                        self.collections[a["collection_name"]]  # noqa: B018 - 404 if absent
                        self.aliases[a["alias_name"]] = a["collection_name"]
                return True
            case "GET", ["collections"]:
                return {"collections": [{"name": n} for n in self.collections]}
            case "GET", ["collections", name, "exists"]:
                return {"exists": name in self.collections}
            case "GET", ["collections", name]:
                c = self.collections[self._name(name)]
                return _collection_info(c["spec"], len(c["points"]))
            case "PUT", ["collections", name]:
                self.collections[name] = {"spec": body, "points": {}}
                return True
            case "PATCH", ["collections", name]:
                spec = self.collections[name]["spec"]
                spec["metadata"] = {**(spec.get("metadata") or {}), **body.get("metadata", {})}
                return True
            case "DELETE", ["collections", name]:
                del self.collections[name]
                return True
            case "PUT", ["collections", name, "points"]:
                points = self.collections[self._name(name)]["points"]
                for p in body["points"]:
                    points[str(p["id"])] = p
                return {"operation_id": 1, "status": "completed"}
            case "POST", ["collections", name, "points", "count"]:
                return {"count": len(self.collections[self._name(name)]["points"])}
            case "POST", ["collections", name, "points"]:  # retrieve by ids
                points = self.collections[self._name(name)]["points"]
                return [self._record(points[str(i)], body) for i in body["ids"] if str(i) in points]
            case "POST", ["collections", name, "points", "scroll"]:
                points = self.collections[self._name(name)]["points"]
                ids = sorted(points)
                start = ids.index(str(body["offset"])) if body.get("offset") is not None else 0
                page = ids[start : start + body["limit"]]
                nxt = ids[start + body["limit"]] if start + body["limit"] < len(ids) else None
                return {"points": [self._record(points[i], body) for i in page],
                        "next_page_offset": nxt}  # fmt: skip
            case "POST", ["collections", name, "points", "query"]:
                points = self.collections[self._name(name)]["points"]
                return {"points": self._query(points, body)}
        raise KeyError(f"{method} /{'/'.join(parts)}")

    @staticmethod
    def _record(p: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        want = body.get("with_payload", True)
        payload = p.get("payload") or {}
        if isinstance(want, list):
            payload = {k: v for k, v in payload.items() if k in want}
        elif isinstance(want, dict) and "include" in want:
            payload = {k: v for k, v in payload.items() if k in want["include"]}
        elif want is False:
            payload = None
        vector = p.get("vector") if body.get("with_vector") else None  # REST: with_vector
        return {"id": p["id"], "payload": payload, "vector": vector, "shard_key": None,
                "order_value": None}  # fmt: skip

    @staticmethod
    def _score(p: dict[str, Any], query: Any, using: str) -> float:
        vec = (p.get("vector") or {}).get(using)
        if vec is None:
            return float("-inf")
        if using == SPARSE:
            weights = dict(zip(vec["indices"], vec["values"], strict=True))
            pairs = zip(query["indices"], query["values"], strict=True)
            return sum(weights.get(i, 0.0) * v for i, v in pairs)
        return sum(a * b for a, b in zip(vec, query, strict=True))

    def _ranked(self, points: dict[str, Any], query: Any, using: str, limit: int) -> list:
        if isinstance(query, dict) and "nearest" in query:  # {"nearest": vector}
            query = query["nearest"]
        scored = [(self._score(p, query, using), pid) for pid, p in points.items()]
        return sorted((s, pid) for s, pid in scored if s > 0 or using == DENSE)[::-1][:limit]

    def _query(self, points: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        if "rrf" in (body.get("query") or {}):
            k, fused = body["query"]["rrf"].get("k", 2), {}
            for pre in body["prefetch"]:
                for rank, (_, pid) in enumerate(
                    self._ranked(points, pre["query"], pre["using"], pre["limit"])
                ):
                    fused[pid] = fused.get(pid, 0.0) + 1.0 / (k + rank + 1)
            top = sorted(((s, pid) for pid, s in fused.items()), reverse=True)
        else:
            top = self._ranked(points, body["query"], body["using"], body["limit"])
        return [{"id": points[pid]["id"], "version": 1, "score": s,
                 "payload": points[pid].get("payload"), "vector": None, "shard_key": None,
                 "order_value": None} for s, pid in top[: body["limit"]]]  # fmt: skip


def _pts() -> list[StorePoint]:
    def unit(i: int) -> list[float]:
        return [1.0 if j == i else 0.0 for j in range(DENSE_DIM)]

    return [
        StorePoint(str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")),
                   {"pid": f"d{i}#0", "doc_id": f"d{i}", "title": f"T{i}", "text": f"t{i}"},
                   unit(i), SparseVec([i, 1000], [1.0, 0.5]))
        for i in range(5)
    ]  # fmt: skip


@pytest.fixture
def qdrant():
    server = QdrantREST()
    store = ServerStore(server.root)
    yield server, store
    store.close()
    server.close()


def test_a_version_is_built_over_http_with_the_requests_qdrant_expects(qdrant):
    server, vs = qdrant
    pts = _pts()
    vs.create_version("t@a", {"source": "x"})
    assert server.sent("GET", "/collections/t@a/exists") == [None]  # drop() looked first
    (create,) = server.sent("PUT", "/collections/t@a")
    assert create["vectors"] == {DENSE: {"size": DENSE_DIM, "distance": "Cosine"}}
    assert create["sparse_vectors"] == {SPARSE: {"modifier": "idf"}}
    meta = create["metadata"]
    assert meta["source"] == "x" and meta["complete"] is False and meta["created_at"] > 0

    vs.upsert("t@a", pts)
    vs.upsert("t@a", [])  # nothing to send: no request
    ((_, _, query, body),) = [r for r in server.requests if r[:2] == ("PUT", "/collections/t@a/points")]  # fmt: skip  # noqa: E501
    assert query["wait"] == ["true"]  # upserts wait until applied
    sent = {p["id"]: p for p in body["points"]}
    assert list(sent) == [p.id for p in pts]
    first = sent[pts[0].id]
    assert first["payload"] == pts[0].payload
    assert first["vector"][DENSE] == pts[0].dense
    assert first["vector"][SPARSE] == {"indices": [0, 1000], "values": [1.0, 0.5]}

    assert not vs.is_complete("t@a")
    vs.mark_complete("t@a")
    assert server.sent("PATCH", "/collections/t@a") == [{"metadata": {"complete": True}}]
    assert vs.is_complete("t@a") and vs.count("t@a") == 5
    assert server.sent("POST", "/collections/t@a/points/count") == [{"exact": True}]

    vs.swap_alias("t", "t@a")  # no alias yet: one create action
    assert server.sent("POST", "/collections/aliases")[-1] == {
        "actions": [{"create_alias": {"collection_name": "t@a", "alias_name": "t"}}]
    }
    activated = server.sent("PATCH", "/collections/t@a")[-1]["metadata"]["activated_at"]
    assert activated >= meta["created_at"]
    vs.create_version("t@b", {"source": "y"})
    vs.upsert("t@b", pts[:2])
    vs.mark_complete("t@b")
    vs.swap_alias("t", "t@b")  # an alias exists: delete and create in one request
    assert server.sent("POST", "/collections/aliases")[-1] == {
        "actions": [{"delete_alias": {"alias_name": "t"}},
                    {"create_alias": {"collection_name": "t@b", "alias_name": "t"}}]
    }  # fmt: skip
    assert vs.alias_target("t") == "t@b" and resolve(vs, "t") == "t@b"
    assert not vs.has_plain("t") and not vs.has_plain("t@zzz") and vs.has_plain("t@a")
    assert [v for v, _ in vs.versions("t")] == ["t@a", "t@b"]
    vs.drop("t@a")
    assert server.sent("DELETE", "/collections/t@a") == [None] and "t@a" not in server.collections
    vs.drop("t@a")  # already gone: only the existence check
    assert server.sent("DELETE", "/collections/t@a") == [None]


def test_scroll_retrieve_and_queries_send_qdrant_requests_and_read_its_answers(qdrant):
    server, vs = qdrant
    pts = _pts()
    vs.create_version("t@1", {})
    vs.upsert("t@1", pts)
    pages = list(vs.scroll("t@1", payload=["pid", "doc_id"], batch=2))
    assert [len(p) for p in pages] == [2, 2, 1]  # paged on next_page_offset until null
    scrolls = server.sent("POST", "/collections/t@1/points/scroll")
    assert [s["limit"] for s in scrolls] == [2, 2, 2] and scrolls[0].get("offset") is None
    assert scrolls[0]["with_payload"] == ["pid", "doc_id"] and scrolls[0]["with_vector"] is False
    assert scrolls[1]["offset"] == pages[1][0].id
    got = [p for page in pages for p in page]
    assert sorted(p.id for p in got) == sorted(p.id for p in pts)
    assert got[0].payload.keys() == {"pid", "doc_id"} and got[0].dense is None

    back = vs.retrieve("t@1", [pts[3].id])
    assert server.sent("POST", "/collections/t@1/points")[-1] == {
        "ids": [pts[3].id], "with_payload": True, "with_vector": True
    }  # fmt: skip
    assert back[0].dense == pts[3].dense and back[0].sparse == pts[3].sparse
    assert back[0].payload == pts[3].payload

    dense = vs.query("t@1", pts[2].dense, None, 3)
    q = server.sent("POST", "/collections/t@1/points/query")[-1]
    assert q == {"query": {"nearest": pts[2].dense}, "using": DENSE, "limit": 3,
                 "with_payload": True, "with_vector": False}  # fmt: skip
    assert dense[0].id == pts[2].id and dense[0].payload["doc_id"] == "d2"
    sparse = vs.query("t@1", None, SparseVec([4], [1.0]), 2)
    q = server.sent("POST", "/collections/t@1/points/query")[-1]
    assert q == {"query": {"nearest": {"indices": [4], "values": [1.0]}}, "using": SPARSE,
                 "limit": 2, "with_payload": True, "with_vector": False}  # fmt: skip
    assert sparse[0].id == pts[4].id
    hybrid = vs.query("t@1", pts[1].dense, SparseVec([1], [1.0]), 2, candidates=50)
    q = server.sent("POST", "/collections/t@1/points/query")[-1]
    assert q == {
        "prefetch": [{"query": pts[1].dense, "using": DENSE, "limit": 50},  # bare vectors
                     {"query": {"indices": [1], "values": [1.0]}, "using": SPARSE, "limit": 50}],
        "query": {"rrf": {"k": RRF_K}}, "limit": 2, "with_payload": True, "with_vector": False,
    }  # fmt: skip
    assert hybrid[0].id == pts[1].id and hybrid[0].score >= hybrid[1].score
    with pytest.raises(ValueError, match="dense or a sparse"):
        vs.query("t@1", None, None, 3)
