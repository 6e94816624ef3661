"""The LEAD objective as pure tensor functions: no model, no optimizer, no distributed code.

LEAD (Sun et al., "LEAD: Liberal Feature-based Distillation for Dense Retrieval", WSDM 2024,
arXiv 2212.05225) aligns the teacher's and the student's *score distributions* over the same
candidate passages at K pairs of intermediate layers:

    L = w_c CE(P_S, y) + w_t CE(P_T, y) + w_r L_rep + w_l sum_k a_k KL(P_T^{t_k} || P_S^{s_k})

with P^l(p|q) = softmax over the candidates of layer l's scores (teacher scores divided by the
temperature tau; the student side has none, as in the official code), layer pairs (s_k, t_k)
drawn at random and sorted (resampled every R optimizer steps), and a_k = softmax(-CE_k / tau_w)
the teacher layer's own ranking quality (no gradient). L_rep is response KD on the final scores:
KL(P_T^tau || P_S) + KL(P_S^tau || P_T) while the teacher trains (mutual), the first term alone when
it is frozen. See docs/method.md for every deviation from the official code.

Shapes: K layer pairs, B queries, N candidates per query.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def contrastive_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of the positive among the candidates. scores [B, N], labels [B]."""
    return F.cross_entropy(scores.float(), labels)


def kl_divergence(
    target: torch.Tensor, inputs: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(softmax(target / tau) || softmax(inputs)) summed over candidates, mean over queries.

    target, inputs [..., B, N] -> [...]  (as `F.kl_div(log P_in, P_target, 'batchmean')`).
    Gradients flow into both arguments; detach the target to stop them.

    >>> kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3))
    tensor(0.)
    """
    log_t = F.log_softmax(target.float() / temperature, dim=-1)
    log_s = F.log_softmax(inputs.float(), dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean(-1)


def layer_ranking_loss(layer_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each layer's own cross-entropy against the labels. [K, B, N], [B] -> [K]"""
    log_p = F.log_softmax(layer_scores.float(), dim=-1)  # [K, B, N]
    picked = log_p.gather(-1, labels.view(1, -1, 1).expand(log_p.shape[0], -1, 1))  # [K, B, 1]
    return -picked.squeeze(-1).mean(-1)


def layer_weights(
    teacher_layer_scores: torch.Tensor,
    labels: torch.Tensor,
    layer_temperature: float,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Re-weighting: a_k = softmax_k(-CE_k / tau_w), CE_k the teacher layer's ranking loss.

    Constants (computed without gradient). [K, B, N], [B] -> [K], sums to 1. `reduce` averages
    CE_k over the workers, so that every worker uses the same weights (the CE of the global
    batch); None: this process's queries only.
    """
    with torch.no_grad():
        ce = layer_ranking_loss(teacher_layer_scores.detach(), labels)  # [K]
        if reduce is not None:
            ce = reduce(ce)
        return torch.softmax(-ce / layer_temperature, dim=0)


def lead_layer_loss(
    student_layers: torch.Tensor,
    teacher_layers: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    layer_temperature: float = 10.0,
    reweight: bool = True,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer term: sum_k a_k KL(P_T^{t_k} || P_S^{s_k}) over already-paired layers.

    Args:
        student_layers: [K, B, N] student scores at layers s_1 < ... < s_K.
        teacher_layers: [K, B, N] teacher scores at layers t_1 < ... < t_K.
        labels: [B] column of each query's positive (for the re-weighting).
        reweight: False gives the plain sum (a_k = 1), K times larger in magnitude.
        reduce: averages the teacher layers' CE over workers (see `layer_weights`).

    Returns:
        (loss scalar, per-pair KL [K] detached, weights a [K]).
    """
    kl = kl_divergence(teacher_layers, student_layers, temperature)  # [K]
    if reweight:
        weights = layer_weights(teacher_layers, labels, layer_temperature, reduce)
    else:
        weights = torch.ones_like(kl)
    return (weights * kl).sum(), kl.detach(), weights


def response_loss(
    teacher: torch.Tensor, student: torch.Tensor, temperature: float, mutual: bool
) -> torch.Tensor:
    """KD on final scores [B, N]: KL(P_T^tau || P_S) (+ KL(P_S^tau || P_T) when mutual)."""
    loss = kl_divergence(teacher, student, temperature)
    if mutual:
        loss = loss + kl_divergence(student, teacher, temperature)
    return loss


# ----------------------------------------------------------------------------- layer selection


def layer_pairs(
    selection: str,
    n_student: int,
    n_teacher: int,
    k: int | str,
    *,
    step: int = 0,
    resample_every: int = 10,
    seed: int = 0,
    explicit: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """The (student_layer, teacher_layer) pairs in use at optimizer step `step`.

    Layer indices count transformer blocks from 0 (embeddings excluded). Pairs are sorted and
    distinct on both sides, so the k-th shallowest student layer learns from the k-th shallowest
    teacher layer.
      random: K layers drawn without replacement on each side, redrawn every `resample_every`
              steps; a pure function of (seed, step // resample_every), hence identical on every
              worker and across a resume.
      last:   the last K layers of each model.
      skip:   the official code's map: the student's last K layers with every (Lt/Ls)-th teacher
              layer from the first (6 -> 12 layers, K = 5: student 1..5 <-> teacher 0,2,4,6,8).
      depth:  the student's last K layers, each with the teacher layer at the same relative
              depth (student block s <-> teacher block round((s+1) * Lt/Ls) - 1).
      map:    the explicit list.
    """
    if selection == "map":
        pairs = [(int(s), int(t)) for s, t in explicit or ()]
        for s, t in pairs:
            if not (0 <= s < n_student and 0 <= t < n_teacher):
                raise ValueError(
                    f"layer pair {(s, t)} is out of range ({n_student}, {n_teacher} layers)"
                )
        return pairs
    k = min(n_student, n_teacher) if k == "all" else min(int(k), n_student, n_teacher)
    if selection == "random":
        rng = random.Random(seed * 1_000_003 + step // resample_every)
        student = sorted(rng.sample(range(n_student), k))
        teacher = sorted(rng.sample(range(n_teacher), k))
        return list(zip(student, teacher, strict=True))
    student = list(range(n_student - k, n_student))
    if selection == "last":
        teacher = list(range(n_teacher - k, n_teacher))
    elif selection == "skip":
        teacher = [min(n_teacher - 1, round(i * n_teacher / n_student)) for i in range(k)]
    elif selection == "depth":
        teacher = [max(0, round((s + 1) * n_teacher / n_student) - 1) for s in student]
    else:
        raise ValueError(f"unknown layer selection {selection!r}")
    return list(zip(student, teacher, strict=True))


# ----------------------------------------------------------------------------- the objective


@dataclass
class LossTerms:
    total: torch.Tensor
    contrastive: torch.Tensor
    teacher: torch.Tensor
    response: torch.Tensor
    layer: torch.Tensor
    layer_kl: torch.Tensor  # [K]
    layer_weights: torch.Tensor  # [K]

    def metrics(self) -> dict[str, float | list[float]]:
        return {
            "loss": float(self.total.detach()),
            "loss_contrastive": float(self.contrastive.detach()),
            "loss_teacher": float(self.teacher.detach()),
            "loss_response": float(self.response.detach()),
            "loss_layer": float(self.layer.detach()),
            "layer_kl": [float(x) for x in self.layer_kl],
            "layer_weights": [float(x) for x in self.layer_weights],
        }


def lead_objective(
    student_final: torch.Tensor,
    student_layers: torch.Tensor,
    teacher_final: torch.Tensor,
    teacher_layers: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights,
    temperature: float = 1.0,
    layer_temperature: float = 10.0,
    reweight: bool = True,
    teacher_trains: bool = True,
    teacher_kd_grad: bool = True,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LossTerms:
    """Combine every term. finals [B, N], layers [K, B, N] (pairs already aligned), labels [B].

    `weights` has attributes contrastive / teacher / response / layer (config LossWeights).
    When the teacher is frozen its CE is not added and response KD is one-way; with
    `teacher_kd_grad` False the KD targets are detached (the teacher learns only from its CE).
    `reduce` makes the layer weights the same on every worker (see `layer_weights`).
    """
    zero = student_final.new_zeros(())
    t_final, t_layers = teacher_final, teacher_layers
    if not teacher_trains or not teacher_kd_grad:
        t_final, t_layers = teacher_final.detach(), teacher_layers.detach()
    stu = contrastive_loss(student_final, labels)
    tch = contrastive_loss(teacher_final, labels) if teacher_trains else zero
    rep = response_loss(
        t_final, student_final, temperature, mutual=teacher_trains and teacher_kd_grad
    )
    if student_layers.shape[0] > 0 and weights.layer > 0:
        lyr, kl, a = lead_layer_loss(
            student_layers, t_layers, labels, temperature, layer_temperature, reweight, reduce
        )
    else:
        lyr, kl, a = zero, zero.new_zeros(0), zero.new_zeros(0)
    total = (
        weights.contrastive * stu
        + weights.teacher * tch
        + weights.response * rep
        + weights.layer * lyr
    )
    return LossTerms(total, stu, tch, rep, lyr, kl, a)
