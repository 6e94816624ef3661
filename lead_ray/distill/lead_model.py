"""The model pair LEAD trains: student and teacher in one module, scored over the same candidates.

`LeadModel.forward(batch, pairs)` returns the total loss and the step's metrics, so DDP and
DeepSpeed wrap one module and a step is one forward call. Layer pairs for a step come from
`pairs_at` (the same on every worker: a pure function of the config and the step).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lead_ray.config import Config
from lead_ray.data.batching import TrainBatch
from lead_ray.distill.losses import layer_pairs, lead_objective
from lead_ray.models.base import Gather, Retriever, Scores
from lead_ray.models.build import build_student, build_teacher
from lead_ray.models.dual_encoder import DualEncoder
from lead_ray.models.scoring import in_batch_labels


def no_gather(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t


class LeadModel(nn.Module):
    """Student and teacher in one module, so DDP/DeepSpeed wrap one thing and a step is one
    forward call. `forward` returns the total loss and the detached metrics."""

    def __init__(
        self,
        student: DualEncoder,
        teacher: Retriever,
        cfg: Config,
        gather: Gather = no_gather,
        rank: int = 0,
        world: int = 1,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        """`gather` concatenates passage-side tensors over the workers, `reduce` averages the
        teacher layers' ranking losses over them (same layer weights on every worker)."""
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.cfg = cfg
        self.gather = gather
        self.rank, self.world = rank, world
        self.reduce = reduce if world > 1 else None
        self.teacher_trains = cfg.teacher.trainable
        if not self.teacher_trains:
            self.teacher.requires_grad_(False)
        # Own candidates only for a cross-encoder teacher or when in-batch negatives are off.
        self.own_only = not teacher.all_pairs or not cfg.train.in_batch
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

    def scores(
        self, batch: TrainBatch, student_layers: list[int], teacher_layers: list[int]
    ) -> tuple[Scores, Scores, torch.Tensor]:
        """Student and teacher scores over the same candidates, and each query's positive.

        -> student (final [B, M], layers [Ls, B, M]), teacher (final [B, M], layers [Lt, B, M]),
        labels [B]; M = every (gathered) passage of the batch, or each query's own 1 + n
        candidates for a cross-encoder teacher or with in-batch negatives off.
        """
        b, n = len(batch), batch.per_query
        kwargs = {"own": self.own_only, "gather": self.gather if self.gathers else None}
        student = self.student.scores(batch.queries, batch.passages, student_layers, **kwargs)
        with torch.set_grad_enabled(self.teacher_trains and torch.is_grad_enabled()):
            teacher = self.teacher.scores(batch.queries, batch.passages, teacher_layers, **kwargs)
        if self.own_only:  # the positive comes first among each query's own candidates
            labels = torch.zeros(b, dtype=torch.long)
        else:
            labels = in_batch_labels(b, n, self.rank * b * n if self.gathers else 0)
        return student, teacher, labels.to(student.final.device)

    def forward(self, batch: TrainBatch, pairs: list[tuple[int, int]]):
        student, teacher, labels = self.scores(batch, [s for s, _ in pairs], [t for _, t in pairs])
        lead = self.cfg.lead
        terms = lead_objective(
            student.final,
            student.layers,
            teacher.final,
            teacher.layers,
            labels,
            weights=lead.weights,
            temperature=lead.temperature,
            layer_temperature=lead.layer_temperature,
            reweight=lead.reweight,
            teacher_trains=self.teacher_trains,
            teacher_kd_grad=lead.teacher_kd_grad,
            reduce=self.reduce,
        )
        metrics = terms.metrics()
        metrics["student_acc"] = float((student.final.argmax(-1) == labels).float().mean())
        metrics["teacher_acc"] = float((teacher.final.argmax(-1) == labels).float().mean())
        metrics["candidates"] = int(student.final.shape[-1])
        return terms.total, metrics


def build_lead_model(
    cfg: Config,
    gather: Gather = no_gather,
    rank: int = 0,
    world: int = 1,
    teacher_cache: str | Path | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LeadModel:
    """Teacher and student as the config says (deterministic in the config's seeds); a frozen
    dual-encoder teacher is answered from `teacher_cache` when given (see `teacher_cache.py`)."""
    torch.manual_seed(cfg.train.seed)
    if teacher_cache is not None:
        from lead_ray.models.cached import load_cached_teacher

        teacher = load_cached_teacher(cfg.teacher, teacher_cache)
    else:
        teacher = build_teacher(cfg.teacher)
    student = build_student(cfg.student, teacher)
    return LeadModel(student, teacher, cfg, gather, rank, world, reduce)


def pairs_at(model: LeadModel, cfg: Config, step: int) -> list[tuple[int, int]]:
    """Layer pairs for optimizer step `step` (0-based); empty when the layer term is off."""
    lead = cfg.lead
    if lead.weights.layer == 0:
        return []
    return layer_pairs(
        lead.selection,
        model.student.num_layers,
        model.teacher.num_layers,
        lead.layers,
        step=step,
        resample_every=lead.resample_every,
        seed=cfg.train.seed,
        explicit=lead.map,
    )
