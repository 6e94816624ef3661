"""Experiment tracking: one tiny training logs to TensorBoard, MLflow (its SQLite store) and
Weights & Biases (offline); each backend's own reader gets back what metrics.jsonl holds."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from lead_ray.config import load_config
from lead_ray.distill.metrics_log import read_metrics
from lead_ray.distill.tracking import scalars
from lead_ray.stages.dispatch import run_stage
from lead_ray.stages.run import Run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    """The train folder of 6 steps with every backend on and dev evaluation every 3 steps."""
    root = tmp_path_factory.mktemp("tracked")
    cfg = load_config(
        TINY,
        [
            "train.steps=6",
            "data.dev_fraction=0.25",
            "train.eval_every=3",
            "track.mlflow=true",
            "track.wandb=true",
            "track.wandb_mode=offline",
            "track.project=lead-tests",
        ],
    )
    run_stage(Run(cfg, root, progress=False), "train")
    return root / "train"


def test_tensorboard_events_read_back_with_tensorboards_reader(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    records = read_metrics(tracked / "metrics.jsonl")
    events = EventAccumulator(str(tracked / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_layer", "opt/lr", "opt/grad_norm_student"} <= tags
    assert {"perf/queries_per_s", "dev/nDCG@10", "dev/RR@10"} <= tags
    assert any(t.startswith("layers/kl/s") for t in tags)
    assert any(t.startswith("layers/weight/s") for t in tags)
    loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert loss == pytest.approx({r["step"]: r["loss"] for r in records})
    dev = {e.step: e.value for e in events.Scalars("dev/nDCG@10")}
    assert sorted(dev) == [3, 6]
    assert dev == pytest.approx(
        {r["step"]: r["dev_nDCG@10"] for r in records if "dev_nDCG@10" in r}
    )
    assert "config/text_summary" in events.Tags()["tensors"]  # the resolved config


def test_mlflow_run_holds_the_metrics_and_the_config(tracked):
    import json

    from mlflow.tracking import MlflowClient

    assert (tracked / "mlflow.db").is_file()
    run_id = json.loads((tracked / "tracking.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tracked / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.data.params["train.steps"] == "6"
    assert run.data.params["lead.layers"] == "2"
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "train/loss")
    records = read_metrics(tracked / "metrics.jsonl")
    assert {m.step: m.value for m in history} == pytest.approx(
        {r["step"]: r["loss"] for r in records}
    )
    # '@' is not allowed in MLflow names: dev/nDCG@10 is logged as dev/nDCG_10
    assert [m.step for m in client.get_metric_history(run_id, "dev/nDCG_10")] == [3, 6]
    assert client.get_experiment(run.info.experiment_id).name == "lead-tests"


def test_wandb_offline_run_written_without_network(tracked):
    runs = glob.glob(str(tracked / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(runs) == 1
    data = Path(runs[0]).read_bytes()
    for key in ("train/loss", "dev/nDCG@10", "opt/lr", "lead-tests"):
        assert key.encode() in data


def test_scalars_name_each_layer_pair_and_group_the_terms():
    record = {
        "step": 4, "loss": 1.5, "loss_layer": 0.5, "layer_kl": [0.2, 0.3],
        "layer_weights": [0.4, 0.6], "pairs": [[0, 1], [1, 3]], "lr": 1e-4,
        "grad_norm_student": 2.0, "queries_per_s": 10.0, "dev_nDCG@10": 0.3, "candidates": 16,
    }  # fmt: skip
    assert scalars(record) == {
        "train/loss": 1.5,
        "train/loss_layer": 0.5,
        "layers/kl/s0-t1": 0.2,
        "layers/kl/s1-t3": 0.3,
        "layers/weight/s0-t1": 0.4,
        "layers/weight/s1-t3": 0.6,
        "opt/lr": 1e-4,
        "opt/grad_norm_student": 2.0,
        "perf/queries_per_s": 10.0,
        "dev/nDCG@10": 0.3,
    }
