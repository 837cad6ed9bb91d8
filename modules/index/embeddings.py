"""Offline fastembed models: dense all-MiniLM-L6-v2 (verified local files) and BM25 sparse.

Both are lazy, process-wide singletons keyed by the models directory.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules import model_store

DENSE_MODEL = "sage/all-MiniLM-L6-v2-int8"
DENSE_DIM = 384
# word pieces the dense model reads: Sentence Transformers' max_seq_length for
# all-MiniLM-L6-v2 (its model card: "input text longer than 256 word pieces is truncated");
# the tokenizer file says 512, which fastembed follows, at 2.9x the CPU for a long passage
DENSE_MAX_TOKENS = 256
SPARSE_MODEL = "Qdrant/bm25"
BM25_DIR = "bm25"

# NLTK's English stop words: what Qdrant/bm25 ships as english.txt (not reachable offline).
_STOPWORDS = (
    "i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself "
    "yourselves he him his himself she she's her hers herself it it's its itself they them "
    "their theirs themselves what which who whom this that that'll these those am is are was "
    "were be been being have has had having do does did doing a an the and but if or because "
    "as until while of at by for with about against between into through during before after "
    "above below to from up down in out on off over under again further then once here there "
    "when where why how all any both each few more most other some such no nor not only own "
    "same so than too very s t can will just don don't should should've now d ll m o re ve y "
    "ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven "
    "haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn "
    "shouldn't wasn wasn't weren weren't won won't wouldn wouldn't "
)
ENGLISH_STOPWORDS = _STOPWORDS.split()

_LOCK = threading.Lock()
# recent queries whose vectors are kept (~1.5 KB each with the sparse one: ~3 MB): the K
# attempts of the seeds in flight repeat their queries within minutes, not hours
QUERY_CACHE = 2048
_DENSE: dict[str, Any] = {}
_SPARSE: dict[str, Any] = {}


@dataclass(frozen=True)
class SparseVec:
    """A sparse vector as plain lists (what Qdrant's SparseVector takes)."""

    indices: list[int]
    values: list[float]


def _register_dense() -> None:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    if any(m["model"] == DENSE_MODEL for m in TextEmbedding.list_supported_models()):
        return
    TextEmbedding.add_custom_model(
        model=DENSE_MODEL,
        pooling=PoolingType.MEAN,
        normalization=True,
        sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
        dim=DENSE_DIM,
        model_file="model.onnx",
        description="all-MiniLM-L6-v2 int8 ONNX from the verified local model store",
    )


def dense_model(models_dir: Path, threads: int | None = None) -> Any:
    """The dense TextEmbedding (verified local files; installs them if missing).

    ``threads=1`` is the query model: one query is too small to split, and onnxruntime's
    second thread only spins (measured: 7.6 ms of CPU per query on one thread, 11.5 on two).
    The document model runs without onnxruntime's CPU memory arena: the arena keeps the
    largest batch's activations (doubling as it grows) for the life of the process, which
    held GBs while indexing; without it a batch's memory is freed when the batch is done.
    Both read at most ``DENSE_MAX_TOKENS`` word pieces of a text.
    """
    key = f"{models_dir}|{threads}"
    with _LOCK:
        if key not in _DENSE:
            from fastembed import TextEmbedding

            path = model_store.ensure_model(Path(models_dir), model_store.EMBEDDER)
            _register_dense()
            model = TextEmbedding(
                DENSE_MODEL,
                specific_model_path=str(path),
                local_files_only=True,
                threads=threads,
                enable_cpu_mem_arena=threads == 1,
            )
            tokenizer = model.model.tokenizer  # fastembed takes no length; its tokenizer does
            tokenizer.enable_truncation(
                max_length=DENSE_MAX_TOKENS, direction=tokenizer.truncation["direction"]
            )
            _DENSE[key] = model
        return _DENSE[key]


def bm25_dir(models_dir: Path) -> Path:
    """A directory fastembed's Qdrant/bm25 accepts offline (it only needs the stopword list)."""
    path = Path(models_dir) / BM25_DIR
    stop = path / "english.txt"
    if not stop.exists():
        path.mkdir(parents=True, exist_ok=True)
        tmp = stop.with_suffix(".tmp")
        tmp.write_text("\n".join(ENGLISH_STOPWORDS) + "\n")
        tmp.replace(stop)
    return path


def sparse_model(models_dir: Path) -> Any:
    """The BM25 SparseTextEmbedding (term frequencies; Qdrant applies IDF)."""
    key = str(models_dir)
    with _LOCK:
        if key not in _SPARSE:
            from fastembed import SparseTextEmbedding

            _SPARSE[key] = SparseTextEmbedding(
                SPARSE_MODEL, specific_model_path=str(bm25_dir(models_dir)), local_files_only=True
            )
        return _SPARSE[key]


@functools.cache
def _libc() -> Any:
    """glibc, or None (another C library: nothing to release)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD = 1 << 20


def release_native_memory() -> bool:
    """Give the C heap's free pages back to the system after a batch (glibc only; returns
    whether it ran). A document batch's onnxruntime tensors are allocated and freed with
    shapes that change with the texts' lengths; glibc keeps what they leave free (and after
    the first large free raises its mmap threshold, so later tensors come from the heap, not
    from mmap): resident memory then grows with the number of batches, not their size.
    Fixing the threshold at 1 MB (tensors above it are mapped and unmapped whole) and
    trimming after each batch keep it bounded by the batch."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.malloc_trim(0)
    return True


def embed_dense(models_dir: Path, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
    """Unit-normalised 384-d document vectors (embedded length-sorted: less padding;
    ``batch_size`` texts at once bound the activations: 32 long passages peak at 0.6 GB over
    the model, 2.1 GB when it read 512 word pieces)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vecs = dense_model(models_dir).embed([texts[i] for i in order], batch_size=batch_size)
    out: list[list[float]] = [[] for _ in texts]
    for i, v in zip(order, vecs, strict=True):
        out[i] = v.tolist()
    return out


def embed_sparse(models_dir: Path, texts: Sequence[str]) -> list[SparseVec]:
    """BM25 document vectors."""
    return [
        SparseVec(e.indices.tolist(), e.values.tolist())
        for e in sparse_model(models_dir).embed(list(texts))
    ]


def query_dense(models_dir: Path, query: str) -> list[float]:
    """A query's dense vector (cached: the K attempts at a question often repeat a query)."""
    return _query_dense_f32(models_dir, query).tolist()


@functools.lru_cache(maxsize=QUERY_CACHE)
def _query_dense_f32(models_dir: Path, query: str) -> Any:
    """Kept as float32 (1.5 KB), not as a list of Python floats (12 KB a vector)."""
    vec = next(iter(dense_model(models_dir, threads=1).query_embed(query)))
    return vec.astype("float32")


@functools.lru_cache(maxsize=QUERY_CACHE)
def query_sparse(models_dir: Path, query: str) -> SparseVec:
    e = next(iter(sparse_model(models_dir).query_embed(query)))
    return SparseVec(e.indices.tolist(), e.values.astype(float).tolist())
