"""LEAD training: the model pair, one optimizer step (`train_step`) and the plain local loop.

`train_step` is shared with the Ray Train workers (lead_ray/distributed/train.py), which only
swap in their own updater (DeepSpeed engine) and gather function (all-gather across workers).
Nothing here imports ray or deepspeed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from lead_ray.config import Config, ConfigError
from lead_ray.data.batching import TrainBatch
from lead_ray.losses import lead_objective, layer_pairs
from lead_ray.modeling import CrossEncoder, Model, build_student, build_teacher
from lead_ray.modeling.outputs import Scores
from lead_ray.scoring import in_batch_labels, own_candidates

log = logging.getLogger(__name__)

Gather = Callable[[torch.Tensor, int], torch.Tensor]  # (tensor, batch_dim) -> gathered tensor


def no_gather(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t


class LeadModel(nn.Module):
    """Student and teacher in one module, so DDP/DeepSpeed wrap one thing and a step is one
    forward call. `forward` returns the total loss and the detached metrics."""

    def __init__(self, student: Model, teacher: Model, cfg: Config, gather: Gather = no_gather,
                 rank: int = 0, world: int = 1):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.cfg = cfg
        self.gather = gather
        self.rank, self.world = rank, world
        self.teacher_trains = cfg.teacher.trainable
        if not self.teacher_trains:
            self.teacher.requires_grad_(False)
        # Own candidates only for a cross-encoder teacher or when in-batch negatives are off.
        self.own_only = isinstance(teacher, CrossEncoder) or not cfg.train.in_batch
        self.gathers = world > 1 and cfg.train.gather and not self.own_only
        if self.gathers:  # equal token shapes on every worker, so ColBERT states can be gathered
            for m in (student, teacher):
                if hasattr(m, "pad_to_max"):
                    m.pad_to_max = True

    def train(self, mode: bool = True) -> LeadModel:
        super().train(mode)
        if not self.teacher_trains:
            self.teacher.eval()  # a frozen teacher runs without dropout
        return self

    def _scores(self, model: Model, batch: TrainBatch, layers: list[int]):
        if isinstance(model, CrossEncoder):
            return model.score_pairs(batch.queries, batch.passages, layers)  # [B, N] own
        q = model.encode_queries(batch.queries, layers)
        p = model.encode_passages(batch.passages, layers)
        if self.gathers:
            p = p.map(self.gather)
        return model.score(q, p)  # [B, M] with M = all (gathered) passages

    def scores(self, batch: TrainBatch, student_layers: list[int], teacher_layers: list[int]
               ) -> tuple[Scores, Scores, torch.Tensor]:
        """Student and teacher scores over the same candidates, and each query's positive.

        -> student (final [B, M], layers [Ls, B, M]), teacher (final [B, M], layers [Lt, B, M]),
        labels [B]; M = every (gathered) passage of the batch, or each query's own 1 + n
        candidates for a cross-encoder teacher or with in-batch negatives off.
        """
        b, n = len(batch), batch.per_query
        student = self._scores(self.student, batch, student_layers)
        with torch.set_grad_enabled(self.teacher_trains and torch.is_grad_enabled()):
            teacher = self._scores(self.teacher, batch, teacher_layers)
        if not self.own_only:
            offset = self.rank * b * n if self.gathers else 0
            return student, teacher, in_batch_labels(b, n, offset).to(student.final.device)
        student = Scores(own_candidates(student.final, n), own_candidates(student.layers, n))
        if not isinstance(self.teacher, CrossEncoder):
            teacher = Scores(own_candidates(teacher.final, n), own_candidates(teacher.layers, n))
        return student, teacher, torch.zeros(b, dtype=torch.long, device=student.final.device)

    def forward(self, batch: TrainBatch, pairs: list[tuple[int, int]]):
        student, teacher, labels = self.scores(batch, [s for s, _ in pairs], [t for _, t in pairs])
        lead = self.cfg.lead
        terms = lead_objective(
            student.final, student.layers, teacher.final, teacher.layers, labels,
            weights=lead.weights, temperature=lead.temperature,
            layer_temperature=lead.layer_temperature, reweight=lead.reweight,
            teacher_trains=self.teacher_trains, teacher_kd_grad=lead.teacher_kd_grad,
        )
        metrics = terms.metrics()
        metrics["student_acc"] = float((student.final.argmax(-1) == labels).float().mean())
        metrics["teacher_acc"] = float((teacher.final.argmax(-1) == labels).float().mean())
        metrics["candidates"] = int(student.final.shape[-1])
        return terms.total, metrics


def build_lead_model(cfg: Config, gather: Gather = no_gather, rank: int = 0, world: int = 1) -> LeadModel:
    """Teacher and student as the config says (deterministic in the config's seeds)."""
    torch.manual_seed(cfg.train.seed)
    if cfg.teacher.cache:
        from lead_ray.modeling.cached import load_cached_teacher

        teacher = load_cached_teacher(cfg.teacher)
    else:
        teacher = build_teacher(cfg.teacher)
    student = build_student(cfg.student, teacher)
    return LeadModel(student, teacher, cfg, gather, rank, world)


def pairs_at(model: LeadModel, cfg: Config, step: int) -> list[tuple[int, int]]:
    """Layer pairs for optimizer step `step` (0-based); empty when the layer term is off."""
    lead = cfg.lead
    if lead.weights.layer == 0:
        return []
    return layer_pairs(lead.selection, model.student.num_layers, model.teacher.num_layers, lead.layers,
                       step=step, resample_every=lead.resample_every, seed=cfg.train.seed,
                       explicit=lead.map)


# ----------------------------------------------------------------------------- optimisation


def warmup_steps(cfg: Config) -> int:
    w = cfg.train.warmup
    return int(round(w * cfg.train.steps)) if w < 1 else int(w)


def linear_schedule(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def param_groups(model: LeadModel, cfg: Config) -> list[dict]:
    """Student and (if it trains) teacher as separate groups: own LR, own clipping."""
    groups = [{"name": "student", "params": [p for p in model.student.parameters() if p.requires_grad],
               "lr": cfg.train.lr}]
    if model.teacher_trains:
        groups.append({"name": "teacher", "params": [p for p in model.teacher.parameters() if p.requires_grad],
                       "lr": cfg.train.teacher_lr or cfg.train.lr})
    return groups


class Updater(Protocol):
    def backward(self, loss: torch.Tensor) -> None: ...
    def step(self) -> dict[str, float]: ...


class LocalUpdater:
    """AdamW (eps 1e-8), per-model gradient clipping, linear warm-up/decay (the LEAD recipe)."""

    def __init__(self, model: LeadModel, cfg: Config):
        self.groups = param_groups(model, cfg)
        self.optimizer = torch.optim.AdamW(self.groups, eps=1e-8, weight_decay=cfg.train.weight_decay)
        total, warm = cfg.train.steps, warmup_steps(cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: linear_schedule(s, total, warm))
        self.clip = cfg.train.grad_clip

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> dict[str, float]:
        out = {"lr": self.optimizer.param_groups[0]["lr"]}
        for group in self.optimizer.param_groups:
            norm = torch.nn.utils.clip_grad_norm_(group["params"], self.clip if self.clip > 0 else float("inf"))
            out[f"grad_norm_{group['name']}"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def autocast(precision: str, device_type: str = "cpu"):
    if precision == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model: nn.Module, batch: TrainBatch, pairs: list[tuple[int, int]], updater: Updater,
               precision: str = "fp32", device_type: str = "cpu") -> dict:
    """One optimizer step: forward (model or its DDP/DeepSpeed wrapper), backward, update.

    Returns the step's metrics (loss terms, per-layer KL and weights, accuracies, LR, norms).
    """
    t0 = time.perf_counter()
    with autocast(precision, device_type):
        loss, metrics = model(batch, pairs)
    updater.backward(loss)
    metrics.update(updater.step())
    metrics["pairs"] = [list(p) for p in pairs]
    metrics["step_time"] = time.perf_counter() - t0
    return metrics


# ----------------------------------------------------------------------------- the local loop


class ResumeMismatch(ConfigError):
    """The output folder holds a run with a different config."""


def _check_resumable(out: Path, cfg: Config) -> None:
    from lead_ray.checkpoint import config_fingerprint
    from lead_ray.config import load_config

    previous = out / "config.yaml"
    if not previous.is_file():
        return
    try:
        old = load_config(previous)
    except ConfigError:
        return  # not ours / unreadable: nothing to compare against
    if config_fingerprint(old.to_dict()) != config_fingerprint(cfg.to_dict()):
        raise ResumeMismatch(
            f"{out} holds a run with a different config ({previous}); "
            "use another --out, or the same config (only train.steps and logging may change)")


def fit_local(cfg: Config, out_dir: str | Path, progress: bool = True, cache_dir: str | Path | None = None,
              examples_path: str | Path | None = None) -> dict:
    """Train in this process; resumes from the newest checkpoint in `out_dir`.

    Writes config.yaml, metrics.jsonl, checkpoints/, student/ (and teacher/ when it trains),
    and manifest.json last. A complete folder for the same config is not trained again.
    """
    from lead_ray.checkpoint import (config_fingerprint, export_model, latest_checkpoint,
                                     load_checkpoint, save_checkpoint)
    from lead_ray.config import save_resolved
    from lead_ray.data.prepare import prepare_training_data
    from lead_ray.progress import MetricsLog, bar
    from lead_ray.storage import fingerprint_folder, read_manifest, remove_stale_temps, write_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp = config_fingerprint(cfg.to_dict())
    done = read_manifest(out)
    if done and done.get("complete") and done.get("config") == fp and done.get("steps") == cfg.train.steps:
        log.info("%s: training already complete, nothing to do", out)
        return done
    _check_resumable(out, cfg)
    remove_stale_temps(out)
    save_resolved(cfg, out)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = prepare_training_data(cfg, out, cache_dir=cache_dir, examples_path=examples_path)
    model = build_lead_model(cfg)
    model.train()
    updater = LocalUpdater(model, cfg)
    ckpt_dir = out / "checkpoints"
    remove_stale_temps(ckpt_dir)
    start = 0
    if (ckpt := latest_checkpoint(ckpt_dir)) is not None:
        start = load_checkpoint(ckpt, model, updater)["step"]
        log.info("resuming from %s (step %d)", ckpt, start)
    metrics_log = MetricsLog(out / "metrics.jsonl", start)
    steps, t0 = cfg.train.steps, time.perf_counter()
    try:
        with bar("train", steps, enabled=progress) as pbar:
            task = pbar.add_task("train", total=steps, completed=start, rate="", info="")
            for step in range(start, steps):
                pairs = pairs_at(model, cfg, step)
                batch = data.batch(step, cfg.train.batch_size)
                m = train_step(model, batch, pairs, updater, cfg.train.precision)
                m["step"] = step + 1
                if (step + 1) % cfg.train.log_every == 0 or step + 1 == steps:
                    metrics_log.write(m)
                rate = (step + 1 - start) / (time.perf_counter() - t0)
                pbar.update(task, completed=step + 1, rate=f"{rate:.2f} steps/s",
                            info=f"loss {m['loss']:.3f} (c {m['loss_contrastive']:.3f} "
                                 f"r {m['loss_response']:.3f} l {m['loss_layer']:.3f})")
                if (step + 1) % cfg.train.checkpoint_every == 0 or step + 1 == steps:
                    ck = save_checkpoint(ckpt_dir, step + 1, model, updater,
                                         {"pairs": m["pairs"], "config": fp}, cfg.train.keep_checkpoints)
                    if cfg.train.export_every_checkpoint:
                        export_model(model.student, ck / "student")
    finally:
        metrics_log.close()
    export_model(model.student, out / "student")
    if model.teacher_trains:
        export_model(model.teacher, out / "teacher")
    manifest = {"kind": "train", "complete": True, "steps": steps, "config": fp, "backend": "local",
                "student": fingerprint_folder(out / "student"), "seconds": time.perf_counter() - t0}
    write_manifest(out, manifest)
    return manifest
