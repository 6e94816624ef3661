"""Experiment tracking: the training metric records, also sent to TensorBoard, MLflow or W&B.

One process tracks a run: the local loop itself, or the Ray Train driver, which follows rank 0's
records as they reach metrics.jsonl (so workers never open a tracker and nothing is logged twice).
Each record becomes scalars named by group: `train/loss`, `train/loss_layer`, `layers/kl/s1-t2`
(student layer 1 against teacher layer 2), `layers/weight/s1-t2`, `opt/lr`, `opt/grad_norm_student`,
`perf/queries_per_s`, `dev/nDCG@10`. The resolved config is logged once as parameters.

Where they go (config section `track`):
- TensorBoard (default): event files in `train/tensorboard/` (`tensorboard --logdir RUN/train`);
- MLflow: a tracking server (`track.mlflow_uri`), else a SQLite store `train/mlflow.db`
  (MLflow's file store is in maintenance mode and refuses new use). The run id is kept in
  `train/tracking.json`, so a resumed training logs into the same MLflow and W&B runs;
- Weights & Biases: online, or offline (`track.wandb_mode`) into `train/wandb/` with no
  network, to `wandb sync` later.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

STATE = "tracking.json"  # run ids of the MLflow / W&B runs, for a resume
GROUPS = {"lr": "opt", "grad_norm": "opt", "step_time": "perf", "queries_per_s": "perf",
          "mem_peak_gib": "perf", "dev_": "dev"}  # fmt: skip
SKIP = {"step", "pairs", "resumed_from", "candidates"}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The named scalars of one metrics record (lists become one scalar per layer pair).

    >>> scalars({"step": 3, "loss": 2.0, "layer_kl": [0.5], "pairs": [[1, 3]], "dev_RR@10": 0.4})
    {'train/loss': 2.0, 'layers/kl/s1-t3': 0.5, 'dev/RR@10': 0.4}
    """
    out: dict[str, float] = {}
    pairs = record.get("pairs") or []
    for key, value in record.items():
        if key in SKIP or isinstance(value, bool) or value is None:
            continue
        if key in ("layer_kl", "layer_weights"):
            name = "kl" if key == "layer_kl" else "weight"
            for (s, t), v in zip(pairs, value, strict=False):
                out[f"layers/{name}/s{s}-t{t}"] = float(v)
        elif isinstance(value, int | float):
            group = next((g for prefix, g in GROUPS.items() if key.startswith(prefix)), "train")
            out[f"{group}/{key.removeprefix('dev_')}"] = float(value)
    return out


def flat_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as `section.key: value` strings (what MLflow and TensorBoard show).

    >>> flat_params({"train": {"lr": 0.1, "deepspeed": {"stage": 0}}, "name": "x"})
    {'train.lr': '0.1', 'train.deepspeed.stage': '0', 'name': 'x'}
    """
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return out


class Backend(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class TensorBoard:
    def __init__(self, folder: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), flush_secs=10)
        table = "\n".join(f"| {k} | {v} |" for k, v in flat_params(config).items())
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + table, 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


_MLFLOW_BAD = re.compile(r"[^A-Za-z0-9_\-. :/]")


class MLflow:
    def __init__(self, uri: str, experiment: str, run_name: str, run_id: str | None,
                 config: dict[str, Any]):  # fmt: skip
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            exp = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(exp, run_name=run_name).info.run_id
            params = [Param(k, v[:6000]) for k, v in flat_params(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(run_id, params=params[i : i + 100])
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_MLFLOW_BAD.sub("_", k), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandB:
    def __init__(self, folder: Path, project: str, run_name: str, run_id: str | None,
                 mode: str, config: dict[str, Any]):  # fmt: skip
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=run_name, dir=str(folder), mode=mode,
                              config=config, id=run_id, resume="allow")  # fmt: skip
        self.run_id = self.run.id

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Tracking:
    """The configured backends of one training run (`open_tracking`); `log` takes metric
    records as written to metrics.jsonl."""

    def __init__(self, backends: list[Backend]):
        self.backends = backends

    def log(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            values = scalars(record)
            for backend in self.backends:
                backend.log(int(record["step"]), values)

    def close(self) -> None:
        for backend in self.backends:
            try:
                backend.close()
            except Exception as err:  # a tracker that cannot close must not fail the training
                log.warning("closing %s: %s", type(backend).__name__, err)

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_tracking(cfg, train_dir: Path) -> Tracking:
    """The backends `cfg.track` asks for, writing under the train folder (`train_dir`)."""
    from lead_ray.config import ConfigError
    from lead_ray.storage import atomic_write_text

    t, config = cfg.track, cfg.to_dict()
    state_file = train_dir / STATE
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
    project = t.project or cfg.name
    backends: list[Backend] = []
    if t.tensorboard:
        backends.append(TensorBoard(train_dir / "tensorboard", config))
    for wanted, module in ((t.mlflow, "mlflow"), (t.wandb, "wandb")):
        if wanted and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"track.{module}: true needs the {module} package: "
                "pip install 'lead-ray[track]' (or set it false)"
            )
    if t.mlflow:
        uri = t.mlflow_uri or f"sqlite:///{(train_dir / 'mlflow.db').resolve()}"
        ml = MLflow(uri, project, cfg.name, state.get("mlflow"), config)
        backends.append(ml)
        state["mlflow"] = ml.run_id
    if t.wandb:
        wb = WandB(train_dir, project, cfg.name, state.get("wandb"), t.wandb_mode, config)
        backends.append(wb)
        state["wandb"] = wb.run_id
    if state:
        atomic_write_text(state_file, json.dumps(state, indent=2) + "\n")
    return Tracking(backends)
