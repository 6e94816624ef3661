"""Rich progress bars and the per-step metrics log shared by every long-running stage."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def bar(description: str, total: int | None, enabled: bool = True, unit: str = "it") -> Progress:
    """A progress bar: done/total, rate, elapsed, ETA, and a free-text field `info`."""
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


class MetricsLog:
    """Append-only JSON lines, one per optimizer step. On resume, lines past the checkpoint's
    step (written after it, then lost with the crash) are dropped so the log matches the run."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        if path.exists():
            kept = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            from lead_ray.storage import atomic_write_text

            atomic_write_text(path, "".join(ln + "\n" for ln in kept))
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
