"""The dense model (real fastembed, the verified local MiniLM files)."""

from __future__ import annotations

from pathlib import Path


def test_the_dense_model_reads_256_word_pieces_as_sentence_transformers_does(
    models_dir: Path,
) -> None:
    """Two texts that differ only after their first 300 word pieces embed the same (a word piece
    past 256 is not read), and a text under 256 pieces still reads to its end."""
    from modules.index import embeddings

    head = " ".join(f"alpha{i % 7} river" for i in range(100))  # 302 word pieces
    a, b = embeddings.embed_dense(models_dir, [head + " Brennick", head + " Halden Mor"])
    assert a == b
    short_a, short_b = embeddings.embed_dense(
        models_dir, ["the river Brennick", "the river Halden"]
    )
    assert short_a != short_b
    tokenizer = embeddings.dense_model(models_dir, threads=1).model.tokenizer
    assert tokenizer.truncation["max_length"] == embeddings.DENSE_MAX_TOKENS == 256
