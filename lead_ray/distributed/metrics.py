"""Metric records on their way from the workers to metrics.jsonl and the driver's progress bar.

Rank 0 buffers its (cross-worker averaged) step records and hands them to `ray.train.report`;
`metrics_writer` is the Ray Train callback that appends them to metrics.jsonl, and
`follow_metrics` follows that file on the driver while `fit()` blocks: progress, and the
experiment trackers (TensorBoard, MLflow, W&B), so only the driver ever opens them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path


def metrics_writer(path: str):
    """A Ray Train callback (it runs in the controller, on the driver's node) that appends rank
    0's buffered step records to metrics.jsonl. Records at or before a step already in the
    file (a restarted or resumed run recomputing steps) replace the old lines from there on."""
    from ray.train import UserCallback

    class MetricsWriter(UserCallback):
        def __init__(self, target: str):
            self.target = target
            self.last: int | None = None  # last step in the file, once known

        def after_report(self, run_context, metrics, checkpoint):
            records = metrics[0].get("records", []) if metrics else []
            if not records:
                return
            path = Path(self.target)
            first = records[0]["step"]
            if self.last is None or first <= self.last:
                from lead_ray.distill.metrics_log import MetricsLog

                MetricsLog(path, first - 1).close()  # keep only the lines before `first`
            with open(path, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in records)
            self.last = records[-1]["step"]

    return MetricsWriter(path)


@contextlib.contextmanager
def follow_metrics(path: Path, steps: int, progress: bool, on_records=None):
    """While `fit()` blocks: follow metrics.jsonl on the driver, showing progress (when
    `progress`) and handing new records to `on_records` (the experiment trackers)."""
    if not progress and on_records is None:
        yield
        return
    from lead_ray.distill.train import step_info
    from lead_ray.progress import bar

    stop, offset, t0 = threading.Event(), [0], time.perf_counter()
    shown: dict = {}  # the last dev metrics, shown with every step's losses
    with bar("train", steps, enabled=progress) as pbar:
        task = pbar.add_task("train", total=steps, completed=0, rate="", info="")

        def update() -> None:
            if not path.is_file():
                return
            if path.stat().st_size < offset[0]:  # rewritten on resume
                offset[0] = 0
            with open(path, "rb") as fh:
                fh.seek(offset[0])
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for the next poll
            offset[0] += len(complete)
            records = [json.loads(ln) for ln in complete.decode("utf-8").splitlines() if ln.strip()]
            if not records:
                return
            if on_records is not None:
                on_records(records)
            shown.update(k_v for r in records for k_v in r.items() if k_v[0].startswith("dev_"))
            m = shown | records[-1]
            rate = (m["step"] - m.get("resumed_from", 0)) / (time.perf_counter() - t0)
            pbar.update(task, completed=m["step"], rate=f"{rate:.2f} steps/s", info=step_info(m))

        def poll() -> None:
            while not stop.wait(1.0):
                update()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            update()
