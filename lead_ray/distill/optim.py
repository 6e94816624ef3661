"""One optimizer step (`train_step`) and the local optimiser: AdamW, per-model clipping, linear
warm-up and decay (the LEAD recipe). The Ray Train workers swap in their own updater (the
DeepSpeed engine, lead_ray/distributed/engine.py) and call the same `train_step`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from lead_ray.config import Config
from lead_ray.data.batching import TrainBatch
from lead_ray.distill.lead_model import LeadModel


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
    groups = [
        {
            "name": "student",
            "params": [p for p in model.student.parameters() if p.requires_grad],
            "lr": cfg.train.lr,
        }
    ]
    if model.teacher_trains:
        groups.append(
            {
                "name": "teacher",
                "params": [p for p in model.teacher.parameters() if p.requires_grad],
                "lr": cfg.train.teacher_lr or cfg.train.lr,
            }
        )
    return groups


class Updater(Protocol):
    def backward(self, loss: torch.Tensor) -> None: ...  # once per micro-batch, loss scaled
    def step(self) -> dict[str, float]: ...  # once per optimizer step


class LocalUpdater:
    """AdamW (eps 1e-8), per-model gradient clipping, linear warm-up/decay (the LEAD recipe)."""

    def __init__(self, model: LeadModel, cfg: Config):
        self.groups = param_groups(model, cfg)
        self.optimizer = torch.optim.AdamW(
            self.groups, eps=1e-8, weight_decay=cfg.train.weight_decay
        )
        total, warm = cfg.train.steps, warmup_steps(cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: linear_schedule(s, total, warm)
        )
        self.clip = cfg.train.grad_clip

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> dict[str, float]:
        out = {"lr": self.optimizer.param_groups[0]["lr"]}
        for group in self.optimizer.param_groups:
            norm = torch.nn.utils.clip_grad_norm_(
                group["params"], self.clip if self.clip > 0 else float("inf")
            )
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


def mean_metrics(records: Sequence[dict]) -> dict:
    """One record from the micro-batches' metrics: numbers and number lists averaged (lists
    element-wise), anything else taken from the last record."""
    out = dict(records[-1])
    for key, last in out.items():
        values = [r[key] for r in records]
        if isinstance(last, (int, float)) and not isinstance(last, bool):
            out[key] = sum(values) / len(values)
        elif isinstance(last, list) and all(isinstance(v, (int, float)) for v in last):
            out[key] = [sum(col) / len(col) for col in zip(*values, strict=True)]
    return out


def train_step(
    model: nn.Module,
    batches: TrainBatch | Sequence[TrainBatch],
    pairs: list[tuple[int, int]],
    updater: Updater,
    precision: str = "fp32",
    device_type: str = "cpu",
) -> dict:
    """One optimizer step over one or more micro-batches (`train.grad_accum`): for each, forward
    (model or its DDP/DeepSpeed wrapper) and backward of its loss divided by their number, so
    the update uses the mean of their gradients (clipped once, as the official code does).

    Returns the step's metrics averaged over the micro-batches (loss terms, per-layer KL and
    weights, accuracies) with the update's LR and gradient norms.
    """
    t0 = time.perf_counter()
    batches = [batches] if isinstance(batches, TrainBatch) else list(batches)
    records = []
    for i, batch in enumerate(batches):
        ddp = isinstance(model, nn.parallel.DistributedDataParallel)
        # DDP all-reduces the gradients once, at the last micro-batch (DeepSpeed counts
        # micro-batches itself: its updater steps the engine at every backward)
        defer = ddp and i < len(batches) - 1
        with model.no_sync() if defer else contextlib.nullcontext():
            with autocast(precision, device_type):
                loss, metrics = model(batch, pairs)
            updater.backward(loss / len(batches))
        records.append(metrics)
    metrics = mean_metrics(records)
    metrics.update(updater.step())
    metrics["pairs"] = [list(p) for p in pairs]
    metrics["step_time"] = time.perf_counter() - t0
    return metrics
