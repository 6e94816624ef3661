"""Collectives for the Ray Train workers: in-batch negatives across workers, logged metrics.

`all_gather_with_grad` is the `gather` a `training.LeadModel` calls on the passage side when it
runs on several workers: every worker scores its queries against the passages of the whole
global batch, and gradients flow back into each worker's own passages. `reduce_metrics` turns
each worker's step metrics into one record for the log. Plain torch.distributed (gloo on CPU,
NCCL on GPU); nothing here imports ray or deepspeed.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

MAX_KEYS = ("step_time", "mem_peak_gib")  # reduced with max; every other number is averaged


class _AllGather(torch.autograd.Function):
    """All-gather whose backward sums every worker's gradient and keeps this worker's slice.

    Not `torch.distributed.nn.functional.all_gather`: on gloo its backward receives into
    buffers shaped like the incoming gradients, and a transposed gradient (a gathered tensor used
    as `p.transpose(-1, -2)` in a matmul, as the score functions do) comes back scrambled.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor, dim: int) -> torch.Tensor:
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        ctx.dim, ctx.start, ctx.size = dim, dist.get_rank() * t.shape[dim], t.shape[dim]
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # Every worker holds d(its loss)/d(global batch); their sum, sliced, is the gradient of
        # the summed loss w.r.t. this worker's part. all_reduce (not reduce_scatter) works on
        # gloo and NCCL alike, at W times the traffic of the passage-side tensors.
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total.narrow(ctx.dim, ctx.start, ctx.size), None


def all_gather_with_grad(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Concatenate `t` from every worker along `dim`, in rank order.

    Every worker must pass a tensor of the same shape (the models pad token tensors to their
    maximum length when they gather). Gradients: each worker's slice receives the sum of the
    gradients of every worker's loss with respect to it, so with DDP/DeepSpeed averaging the
    update is the gradient of the mean loss over the global batch.

    Args:
        t: e.g. passage vectors [B*N, D], layer vectors [L, B*N, H], token states
            [B*N, T, D], a token mask [B*N, T].
        dim: the batch dimension of `t`.

    Returns:
        [..., W*B*N, ...]: the global batch along `dim`.
    """
    if t.requires_grad:
        return _AllGather.apply(t, dim)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]  # masks, frozen states
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)


def all_gather_local_grad(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Concatenate `t` from every worker along `dim`, gradients flowing into this worker's own
    slice only (the official LEAD code's `gather_tensor`): each worker's loss trains the
    passages it encoded, and DDP/DeepSpeed average the workers' gradients (`train.gradients:
    per_rank`). Shapes as in `all_gather_with_grad`.
    """
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    parts[dist.get_rank()] = t
    return torch.cat(parts, dim=dim)


GATHERS = {"per_rank": all_gather_local_grad, "global_batch": all_gather_with_grad}


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over the workers, without gradient (e.g. each teacher layer's ranking
    loss, so that every worker derives the same layer weights). [...] -> [...]"""
    out = t.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def _numbers(value) -> list[float] | None:
    """A metric's numeric content (a number or a flat list of numbers), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    return None


def reduce_metrics(metrics: dict, device: torch.device | str = "cpu") -> dict:
    """One record from every worker's step metrics (a collective: every worker calls it).

    Numbers and flat lists of numbers are averaged over the workers (losses, accuracies,
    per-layer KL and weights), `MAX_KEYS` take the maximum; anything else (the layer pairs,
    identical everywhere) is kept as is. Every worker gets the same record.
    """
    keys = sorted(k for k, v in metrics.items() if _numbers(v) is not None)
    flat = [x for k in keys for x in _numbers(metrics[k])]
    local = torch.tensor(flat, dtype=torch.float64, device=device)  # [F]
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    stacked = torch.stack(parts).cpu()  # [W, F]
    mean, peak = stacked.mean(0).tolist(), stacked.max(0).values.tolist()
    out, i = dict(metrics), 0
    for k in keys:
        n = len(_numbers(metrics[k]))
        values = (peak if k in MAX_KEYS else mean)[i : i + n]
        if isinstance(metrics[k], list):
            out[k] = values
        else:
            out[k] = int(round(values[0])) if isinstance(metrics[k], int) else values[0]
        i += n
    return out


def agree(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every worker when `flag` is true on any (a collective)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
