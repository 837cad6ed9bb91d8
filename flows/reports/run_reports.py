"""A run's reports, rebuilt from its files: report.md (with its plots) and report.html."""

from __future__ import annotations

import json
from pathlib import Path

from flows.reports.html import write_html_report
from flows.reports.markdown import write_report


def write_run_reports(run_dir: Path) -> None:
    """report.md from the run's manifest and metrics (when it has metrics), report.html."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        manifest = json.loads((run_dir / "manifest.json").read_text())
        write_report(run_dir, manifest, json.loads(metrics.read_text()))
    write_html_report(run_dir)
