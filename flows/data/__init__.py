"""Data that ships with sage or is read by flows: QA-set loaders, the demo corpus."""

from pathlib import Path

# the small profile's few-shot demos, built by flows/data/build_demos.py
BUNDLED_PROGRAM = Path(__file__).resolve().parent / "programs" / "small.json"
