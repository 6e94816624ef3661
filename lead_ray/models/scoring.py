"""Pure score functions shared by training, mining and search: pooling, dot, MaxSim, candidates.

No model, no distributed code. Shape letters: L layers, B queries, M candidate passages,
N candidates per query, T tokens, H/D hidden size.
"""

from __future__ import annotations

import torch


def pool_cls(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """First-token pooling. states [..., B, T, H], mask [B, T] -> [..., B, H]."""
    return states[..., 0, :]


def pool_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens. states [..., B, T, H], mask [B, T] -> [..., B, H]."""
    m = mask.to(states.dtype).unsqueeze(-1)  # [B, T, 1]
    return (states * m).sum(-2) / m.sum(-2).clamp(min=1.0)


def pool_max(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over non-padding tokens. states [..., B, T, H], mask [B, T] -> [..., B, H]."""
    pad = (mask == 0).unsqueeze(-1)  # [B, T, 1]
    return states.masked_fill(pad, torch.finfo(states.dtype).min).max(dim=-2).values


def pool_last(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last non-padding token (right padding).

    states [..., B, T, H], mask [B, T] -> [..., B, H]."""
    last = (mask.sum(-1) - 1).clamp(min=0)  # [B]
    return states[..., torch.arange(mask.shape[0], device=states.device), last, :]


POOLING = {"cls": pool_cls, "mean": pool_mean, "max": pool_max, "lasttoken": pool_last}


def dot_scores(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Inner products of every query with every passage.

    q [..., B, D], p [..., M, D] -> [..., B, M]

    >>> dot_scores(torch.tensor([[1., 0.]]), torch.tensor([[2., 3.], [0., 1.]]))
    tensor([[2., 0.]])
    """
    return q @ p.transpose(-1, -2)


def maxsim_scores(
    q: torch.Tensor,
    q_mask: torch.Tensor,
    p: torch.Tensor,
    p_mask: torch.Tensor,
    chunk: int = 64,
) -> torch.Tensor:
    """ColBERT late interaction: for each query token the best-matching passage token, summed.

    score(q, p) = sum_{i: q_mask_i} max_{j: p_mask_j} <q_i, p_j>

    q [..., B, Tq, H], q_mask [B, Tq], p [..., M, Tp, H], p_mask [M, Tp] -> [..., B, M].
    Passages are processed `chunk` at a time to bound the [B, M, Tq, Tp] similarity tensor. The
    result is float32 whatever the inputs' dtype (the sum over query tokens is done in fp32).

    >>> q = torch.tensor([[[1., 0.], [0., 1.]]]); p = torch.tensor([[[1., 0.], [5., 5.]]])
    >>> maxsim_scores(q, torch.ones(1, 2), p, torch.tensor([[1., 0.]]))
    tensor([[1.]])
    """
    qm = q_mask.to(torch.float32)  # [B, Tq]
    out = []
    for start in range(0, p.shape[-3], chunk):
        pc = p[..., start : start + chunk, :, :]  # [..., m, Tp, H]
        pm = p_mask[start : start + chunk].bool()  # [m, Tp]
        sim = torch.einsum("...bqh,...mph->...bmqp", q, pc)  # [..., B, m, Tq, Tp]
        # the fill value of the scores' own dtype (bf16 under autocast: fp32's min overflows it)
        sim = sim.masked_fill(~pm[None, :, None, :], torch.finfo(sim.dtype).min)
        best = sim.max(dim=-1).values.float()  # [..., B, m, Tq]; summed in fp32
        out.append((best * qm[:, None, :]).sum(-1))  # [..., B, m]
    return torch.cat(out, dim=-1)


def own_candidates(scores: torch.Tensor, per_query: int, offset: int = 0) -> torch.Tensor:
    """Each query's own block of `per_query` candidates out of a flat candidate axis.

    Query b's passages sit at columns offset + b*per_query ... offset + (b+1)*per_query - 1.
    scores [..., B, M] -> [..., B, per_query]
    """
    b = scores.shape[-2]
    cols = offset + torch.arange(b, device=scores.device)[:, None] * per_query
    cols = cols + torch.arange(per_query, device=scores.device)[None, :]  # [B, N]
    index = cols.expand(*scores.shape[:-2], b, per_query)
    return scores.gather(-1, index)


def in_batch_labels(batch: int, per_query: int, offset: int = 0) -> torch.Tensor:
    """Column of each query's positive in a flat in-batch candidate axis: offset + b*per_query."""
    return offset + torch.arange(batch) * per_query
