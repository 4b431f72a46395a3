"""The progress bar of ``synthkit generate``: samples/s and ETA with rich, or nothing."""

from __future__ import annotations

from typing import Any


class Progress:
    """A rich progress bar with samples/s and ETA (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return NoBar()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Speed(ProgressColumn):
            def render(self, task: Any) -> Text:  # average since the start: shards finish in bursts
                done = task.completed - task.fields.get("start", 0)
                speed = done / task.elapsed if task.elapsed and done > 0 else None
                return Text(f"{speed:6.2f} samples/s" if speed else "   ... samples/s")

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Speed(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


class NoBar:
    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        pass
