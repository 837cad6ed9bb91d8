"""Data that ships with sage or is read by flows: QA-set loaders, the demo corpus."""
