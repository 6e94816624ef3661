"""The training metrics log: one JSON line per logged optimizer step (`train/metrics.jsonl`)."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only JSON lines, one per optimizer step. On resume, lines past the checkpoint's
    step (written after it, then lost with the crash) are dropped so the log matches the run."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        if path.exists():
            kept = [
                ln
                for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= resume_step
            ]
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
