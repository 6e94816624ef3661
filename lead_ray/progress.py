"""Progress of every long-running stage (encode, mine, train): a rich bar in a terminal, plain
log lines elsewhere.

Outside a terminal (CI, `lead jobs logs`, a file) a bar's columns get cut to "0:00… ETA 0:0…",
so there each task prints one whole line every `LEAD_PROGRESS_SECONDS` seconds (default 30) and
one when it ends: `train 120/300 (40%) 2.31 steps/s elapsed 0:00:52 ETA 0:01:18 loss ...`.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def bar(description: str, total: int | None, enabled: bool = True, unit: str = "it"):
    """A progress display: done/total, rate, elapsed, ETA, and a free-text field `info`
    (a rich `Progress` in a terminal, `LineProgress` elsewhere)."""
    if enabled and not console.is_terminal:
        return LineProgress(float(os.environ.get("LEAD_PROGRESS_SECONDS", "30")))
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class LineProgress:
    """The `Progress` calls the stages make (`add_task`, `update`), written as one plain line per
    task every `every` seconds and at the end."""

    def __init__(self, every: float = 30.0, stream=None):
        self.every, self.stream = every, stream or sys.stderr
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        for task in self.tasks.values():
            if task["completed"] != task["printed"]:
                self._print(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0,
                 **fields) -> int:  # fmt: skip
        now = time.monotonic()
        self.tasks[len(self.tasks)] = {"description": description, "total": total,
                                       "completed": completed, "start_done": completed,
                                       "t0": now, "last": now, "printed": None,
                                       "fields": dict(fields)}  # fmt: skip
        return len(self.tasks) - 1

    def update(self, task_id: int, *, completed: float | None = None, advance: float = 0,
               total: float | None = None, **fields) -> None:  # fmt: skip
        task = self.tasks[task_id]
        task["completed"] = (task["completed"] if completed is None else completed) + advance
        task["total"] = task["total"] if total is None else total
        task["fields"].update(fields)
        now = time.monotonic()
        if now - task["last"] >= self.every or task["completed"] == task["total"]:
            task["last"] = now
            self._print(task)

    def line(self, task: dict) -> str:
        done, total = task["completed"], task["total"]
        elapsed = time.monotonic() - task["t0"]
        parts = [task["description"], f"{done:,.0f}" + (f"/{total:,.0f}" if total else "")]
        if total:
            parts.append(f"({100 * done / total:.0f}%)")
        if task["fields"].get("rate"):
            parts.append(task["fields"]["rate"])
        parts.append(f"elapsed {_clock(elapsed)}")
        speed = (done - task["start_done"]) / elapsed if elapsed > 0 else 0
        if total and speed > 0 and done < total:
            parts.append(f"ETA {_clock((total - done) / speed)}")
        if task["fields"].get("info"):
            parts.append(task["fields"]["info"])
        return " ".join(parts)

    def _print(self, task: dict) -> None:
        task["printed"] = task["completed"]
        print(self.line(task), file=self.stream, flush=True)
