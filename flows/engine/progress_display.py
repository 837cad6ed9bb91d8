"""How a run's progress is shown on stderr: a rich progress line (a bar per run, redrawn in
place, round lines printed above it) on a terminal; on anything else (a pipe, CI, a log
file) a plain timestamped line each time a seed or question finishes, and a last one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from flows.engine.snapshot import Listener, Snapshot, say


class PlainDisplay:
    """A line per change of the work done (not per round's cost), and the final line."""

    def __init__(self) -> None:
        self.shown: dict[str, tuple[int, int | None, bool]] = {}

    def __call__(self, snap: Snapshot) -> None:
        key = (snap.done, snap.accepted, snap.final)
        if self.shown.get(snap.run_id) != key:
            self.shown[snap.run_id] = key
            say(snap.line())


class RichDisplay:
    """One rich progress bar per run, its stats beside it; updated on every snapshot."""

    def __init__(self, console: Console):
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=16),
            TaskProgressColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, snap: Snapshot) -> None:
        done, stats = 100.0 * snap.fraction(), snap.stats()
        task = self.tasks.get(snap.run_id)
        if task is None:  # added whole: the refresh thread may draw it at once
            self.tasks[snap.run_id] = self.bar.add_task(
                f"run {snap.run_id}", total=100.0, completed=done, stats=stats
            )
        else:
            self.bar.update(task, completed=done, stats=stats)


@contextmanager
def open_display(console: Console | None = None) -> Iterator[Listener]:
    """The display for stderr: rich on an interactive terminal, plain lines otherwise."""
    console = console or Console(stderr=True)
    if not console.is_interactive:
        yield PlainDisplay()
        return
    rich = RichDisplay(console)
    with rich.bar:  # redirects stdout/stderr: other lines print above the bar
        console.show_cursor(True)  # a Ctrl-C exits at once (os._exit): never leave it hidden
        yield rich
