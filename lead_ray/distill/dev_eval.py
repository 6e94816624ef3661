"""Dev evaluation during training, and the best student it selects.

Every `train.eval_every` steps the student re-ranks each dev query's first-stage candidates (the
mining model's top `train.eval_depth`, `mine/dev.trec`, or `train.dev_run`) and the run is scored
against the dev qrels with ir-measures: cheap (no corpus encoding), and it ranks checkpoints the
way full retrieval does as long as the candidates hold the relevant documents. `BestStudent`
keeps the best score, its step and the evaluations since a gain (early stopping); its state
travels in checkpoints so a resumed run keeps the best it had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lead_ray.data.store import CorpusStore
from lead_ray.models.base import Retriever

DEV_METRICS = ("nDCG@10", "RR@10")  # always logged; `train.eval_metric` is added when another


@dataclass
class DevSet:
    """What a dev evaluation reads: dev queries, their candidates and judgements."""

    queries: dict[str, str]  # qid -> text, dev queries only
    candidates: dict[str, list[tuple[str, float]]]  # qid -> first-stage run, best first
    qrels: dict[str, dict[str, int]]
    store: CorpusStore
    depth: int
    title: bool = True
    metrics: tuple[str, ...] = DEV_METRICS

    def __len__(self) -> int:
        return len(self.candidates)


def dev_metrics(model: Retriever, dev: DevSet) -> dict[str, float]:
    """The model's dev scores (`dev_nDCG@10`, ...) from re-ranking the dev candidates.

    The model is put in eval mode (no dropout) and restored; gradients are off. Under ZeRO-3 every
    rank must call this with the same dev set (the forward passes gather parameters together).
    """
    from lead_ray.evaluation.metrics import evaluate
    from lead_ray.evaluation.rerank import rerank

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run = rerank(model, dev.candidates, dev.queries, dev.store, dev.depth, dev.title)
    finally:
        model.train(was_training)
    result = evaluate(run, dev.qrels, list(dev.metrics))
    return {f"dev_{name}": float(value) for name, value in result["aggregate"].items()}


def dev_set(cfg, store: CorpusStore, queries: dict[str, str], qrels, candidates) -> DevSet:
    """The dev set of a config: the first `train.eval_queries` judged dev queries that have
    candidates, scored with nDCG@10, RR@10 and `train.eval_metric` (canonical names)."""
    t = cfg.train
    qids = sorted(q for q in qrels if q in candidates and q in queries)[: t.eval_queries]
    if not qids:
        raise ValueError("no dev query has both judgements and candidates")
    metric = selection_metric(t.eval_metric)
    names = DEV_METRICS + ((metric,) if metric not in DEV_METRICS else ())
    return DevSet(
        queries={q: queries[q] for q in qids},
        candidates={q: candidates[q][: t.eval_depth] for q in qids},
        qrels={q: qrels[q] for q in qids},
        store=store,
        depth=t.eval_depth,
        title=cfg.data.title,
        metrics=names,
    )


def selection_metric(name: str) -> str:
    """The canonical ir-measures name of `train.eval_metric` (`MRR@10` -> `RR@10`)."""
    from lead_ray.evaluation.metrics import parse_metrics

    return str(parse_metrics([name])[0])


@dataclass
class BestStudent:
    """The best dev score seen, its step, and how many evaluations have passed without a gain."""

    metric: str
    patience: int = 0  # stop after this many evaluations without a gain; 0 = never
    best: float = float("-inf")
    step: int = 0
    stale: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"dev_{self.metric}"

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Record an evaluation; True when it is a new best (ties keep the earlier step)."""
        value = metrics[self.key]
        self.history.append((step, value))
        if value > self.best:
            self.best, self.step, self.stale = value, step, 0
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience

    def state(self) -> dict[str, Any]:
        best = None if self.best == float("-inf") else self.best
        return {"metric": self.metric, "best": best, "step": self.step, "stale": self.stale}

    def load(self, state: dict[str, Any] | None) -> None:
        if state and state.get("metric") == self.metric and state.get("best") is not None:
            self.best, self.step, self.stale = state["best"], state["step"], state["stale"]


def eval_interval(cfg, has_dev: bool) -> int:
    """Steps between dev evaluations: `train.eval_every`, or (None) every checkpoint when the
    run has a dev split; 0 = never."""
    every = cfg.train.eval_every
    return (cfg.train.checkpoint_every if has_dev else 0) if every is None else every


class Selection:
    """The dev evaluations of one training and the best student they pick; both training loops
    (local and Ray Train) use it the same way: `due(step)`, then `evaluate(student, step)`."""

    def __init__(self, cfg, dev: DevSet | None, every: int):
        self.dev, self.every, self.steps = dev, every if dev is not None else 0, cfg.train.steps
        self.best = BestStudent(selection_metric(cfg.train.eval_metric), cfg.train.early_stop)

    def due(self, step: int) -> bool:
        """Whether the step just finished (`step`, 1-based) is evaluated: every `every` steps
        and the last one."""
        return self.every > 0 and (step % self.every == 0 or step == self.steps)

    def evaluate(self, student: Retriever, step: int) -> tuple[dict[str, float], bool]:
        """Dev metrics of the student after `step` (with `dev_best`, the best so far) and
        whether they are a new best."""
        metrics = dev_metrics(student, self.dev)
        improved = self.best.update(step, metrics)
        metrics["dev_best"] = self.best.best
        return metrics, improved
