"""What a Ray Train worker writes into (and reads back from) one training checkpoint.

Every worker writes its own part into a local folder and reports it; Ray Train merges the
workers' folders into one checkpoint in storage. Reporting from rank 0 only would silently drop
the other ranks' ZeRO shards (a known pitfall), so `load_state` refuses a checkpoint that lacks
any rank's files.

step-00000040/
  state.json                          step, layer pairs, config fingerprint, world size, stage
  rng-rank-0000.safetensors ...       each rank's torch RNG (dropout continues the same stream)
  deepspeed/                          stages 1-3: DeepSpeed's own layout (every rank's shard)
  model.safetensors, optimizer.pt     stage 0 (DDP): rank 0 only, weights are replicated
  student/ [teacher/]                 consolidated Hugging Face folders (final step, or on request)

DeepSpeed reads its shard files with its own loader; our files are safetensors, JSON and an
optimizer state read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lead_ray.models.build import export_model

DS_DIR, DS_TAG = "deepspeed", "state"


def _rng_file(rank: int) -> str:
    return f"rng-rank-{rank:04d}.safetensors"


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save_state(
    folder: Path,
    *,
    step: int,
    extra: dict,
    model: nn.Module,
    updater,
    engine,
    rank: int,
    world: int,
    stage: int,
) -> None:
    """Write this rank's part of the checkpoint at `step` into `folder` (DeepSpeed: collective)."""
    if engine is not None:
        engine.save_checkpoint(str(folder / DS_DIR), tag=DS_TAG, client_state={"step": step})
    elif rank == 0:
        weights = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(folder / "model.safetensors"))
        torch.save(updater.state_dict(), folder / "optimizer.pt")
    save_file(_rng_state(), str(folder / _rng_file(rank)))
    if rank == 0:
        state = {"step": step, "world": world, "stage": stage, **extra}
        (folder / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")


def missing_parts(folder: Path, world: int, stage: int) -> list[str]:
    """Files of a `world`-worker checkpoint that are absent (empty when it is complete)."""
    needed = ["state.json"] + [_rng_file(r) for r in range(world)]
    if stage == 0:
        needed += ["model.safetensors", "optimizer.pt"]
    missing = [name for name in needed if not (folder / name).is_file()]
    if stage > 0:
        shards = folder / DS_DIR / DS_TAG
        have = {p.name for p in shards.glob("*optim_states.pt")} if shards.is_dir() else set()
        for r in range(world):
            if not any(f"zero_pp_rank_{r}_" in name for name in have):
                missing.append(f"{DS_DIR}/{DS_TAG}/*zero_pp_rank_{r}_*optim_states.pt")
    return missing


def load_state(
    folder: Path, *, model: nn.Module, updater, engine, rank: int, world: int, stage: int
) -> dict:
    """Restore weights, optimizer, schedule and this rank's RNG; returns state.json.

    Raises:
        RuntimeError: the checkpoint lacks a rank's files, or was written by another world
            size or ZeRO stage (ZeRO shards are split by world size).
    """
    missing = missing_parts(folder, world, stage)
    if missing:
        raise RuntimeError(f"checkpoint {folder} is incomplete: missing {', '.join(missing[:4])}")
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if (state["world"], state["stage"]) != (world, stage):
        raise RuntimeError(
            f"checkpoint {folder} was written by {state['world']} workers at ZeRO "
            f"stage {state['stage']}; this run has {world} at stage {stage}"
        )
    if engine is not None:
        engine.load_checkpoint(
            str(folder / DS_DIR),
            tag=DS_TAG,
            load_optimizer_states=True,
            load_lr_scheduler_states=True,
        )
    else:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        updater.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    rng = load_file(str(folder / _rng_file(rank)))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state


# ----------------------------------------------------------------------------- consolidated export


def skeleton(module: nn.Module) -> nn.Module:
    """A CPU copy taken before DeepSpeed partitions the live module: the export target."""
    return copy.deepcopy(module).cpu()


def full_parameters(module: nn.Module, stage: int, rank: int) -> dict[str, torch.Tensor] | None:
    """The module's full fp32 parameters on rank 0 (None elsewhere); a collective.

    Stages 1-3 read DeepSpeed's fp32 master copy (under bf16 the module itself holds rounded
    weights; under ZeRO-3 it holds only this rank's partition).
    """
    out: dict[str, torch.Tensor] = {}
    for name, p in module.named_parameters():
        full = None
        if stage > 0 and p.requires_grad:
            from deepspeed.utils import safe_get_full_fp32_param

            full = safe_get_full_fp32_param(p)
        if full is None and stage == 3:  # a frozen ZeRO-3 parameter: gather its partitions
            from deepspeed.zero import GatheredParameters

            with GatheredParameters([p]):
                full = p.detach().clone()
        elif full is None:  # stage 0, or a frozen (replicated) parameter: the module's values
            full = p.detach()
        if rank == 0:
            out[name] = full.float().cpu()
    return out if rank == 0 else None


def export_consolidated(
    module: nn.Module, shell: nn.Module | None, target: Path, stage: int, rank: int
) -> None:
    """Write `module` as a Hugging Face folder at `target` (rank 0 writes; every rank calls).

    Args:
        shell: rank 0's `skeleton(module)`; it receives the full weights and is exported.
    """
    params = full_parameters(module, stage, rank)
    if rank != 0:
        return
    missing, unexpected = shell.load_state_dict(params, strict=False)
    buffers = {name for name, _ in shell.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise RuntimeError(
            f"export: parameter names differ (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    export_model(shell, target)
