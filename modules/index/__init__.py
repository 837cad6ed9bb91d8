"""The index layer: corpus files to passages, embeddings, the versioned vector store (embedded
Qdrant Edge or a server), and the retrievers the programs search through."""
