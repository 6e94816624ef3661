"""How a Ray Train worker wraps the `LeadModel`: plain DDP (stage 0) or a DeepSpeed ZeRO engine.

Both give `training.train_step` a module to call and an updater with `backward(loss)` and
`step() -> dict`. DeepSpeed gets lead-ray's own optimizer (torch AdamW with a student and a
teacher parameter group, each with its LR) and the same linear warm-up/decay schedule as the
local loop, so no DeepSpeed op is JIT-compiled for the optimizer. One difference remains:
DeepSpeed clips the global gradient norm over all parameters, where the local loop (and DDP
here) clips the student's and the teacher's gradients separately.

The DeepSpeed JSON (`train.deepspeed.config`) adds tuning keys; keys that lead-ray owns (batch
size, accumulation, clipping, ZeRO stage, precision, optimizer, scheduler) must agree with the
lead config or be "auto".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from lead_ray.config import Config, ConfigError
from lead_ray.distill.lead_model import LeadModel
from lead_ray.distill.optim import LocalUpdater, linear_schedule, param_groups, warmup_steps

log = logging.getLogger(__name__)

# (path in the DeepSpeed JSON, what lead-ray sets it from)
OWNED = {
    ("train_micro_batch_size_per_gpu",): "train.batch_size",
    ("gradient_accumulation_steps",): "train.grad_accum",
    ("gradient_clipping",): "train.grad_clip",
    ("zero_optimization", "stage"): "train.deepspeed.stage",
    ("bf16", "enabled"): "train.precision",
}
REFUSED = {
    "optimizer": "lead-ray passes its own AdamW (student and teacher groups, each with its LR)",
    "scheduler": "lead-ray passes its own linear warm-up/decay schedule (train.warmup)",
    "train_batch_size": "set train.batch_size (per worker) and train.workers instead",
    "fp16": "use train.precision: bf16 (fp16 needs loss scaling, which lead-ray does not set up)",
}


def read_deepspeed_json(cfg: Config) -> dict[str, Any]:
    """The JSON file named by `train.deepspeed.config` ({} when none); checked against `cfg`.

    Raises:
        ConfigError: naming the file and key that cannot be used.
    """
    ds = cfg.train.deepspeed
    if ds.config is None:
        return {}
    path = Path(ds.config)
    if ds.stage == 0:
        raise ConfigError(
            f"train.deepspeed.config={ds.config}: stage 0 runs plain DDP without "
            "DeepSpeed; set train.deepspeed.stage to 1, 2 or 3, or drop the file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"train.deepspeed.config: {path}: file not found "
            f"(relative paths are read from {Path.cwd()})"
        ) from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be an object")
    deepspeed_config(cfg, data, source=str(path))  # raises on conflicts
    return data


def _get(tree: dict, path: tuple[str, ...]):
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value != "auto":
            out[key] = value
    return out


def deepspeed_config(
    cfg: Config, extra: dict | None = None, source: str = "deepspeed config"
) -> dict:
    """The DeepSpeed config for `cfg` (a pure function), with `extra` (the JSON file) merged in.

    Raises:
        ConfigError: when `extra` sets a key lead-ray owns to a different value.
    """
    t = cfg.train
    generated: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "gradient_clipping": t.grad_clip,  # 0 disables it
        "zero_optimization": {"stage": t.deepspeed.stage},
        "zero_allow_untested_optimizer": True,  # a torch AdamW, no fused_adam JIT build
        "bf16": {"enabled": t.precision == "bf16"},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
    if t.deepspeed.offload_optimizer:
        generated["zero_optimization"]["offload_optimizer"] = {
            "device": "cpu",
            "pin_memory": t.use_gpu,
        }
        generated["zero_force_ds_cpu_optimizer"] = False  # keep our AdamW (it runs on the CPU copy)
    extra = extra or {}
    for key, why in REFUSED.items():
        if key in extra and not (
            key == "fp16" and _get(extra, ("fp16", "enabled")) in (False, "auto")
        ):
            raise ConfigError(f"{source}: {key}: not allowed here ({why})")
    for path, owner in OWNED.items():
        given, ours = _get(extra, path), _get(generated, path)
        if given is not None and given != "auto" and given != ours:
            raise ConfigError(
                f"{source}: {'.'.join(path)}={given!r} disagrees with {owner} "
                f"(which gives {ours!r}); change the lead config or drop the key"
            )
    return _merge(generated, extra)


class DeepSpeedUpdater:
    """`backward` / `step` through a DeepSpeed engine (it steps the LR schedule itself).

    With `train.grad_accum` micro-batches per step the engine counts them: `train_step` scales
    each loss already, and every micro-batch's `engine.step()` but the last only advances the
    engine's counter; the last reduces the gradients, clips and updates.
    """

    def __init__(self, engine):
        self.engine = engine

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()

    def step(self) -> dict[str, float]:
        lr = self.engine.get_lr()[0]  # the LR this step uses (read before the scheduler moves)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return {"lr": lr, "grad_norm": float("nan") if norm is None else float(norm)}


def build_optimizer(model: LeadModel, cfg: Config):
    """The local loop's AdamW and LR schedule, for DeepSpeed to drive."""
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg), eps=1e-8, weight_decay=cfg.train.weight_decay
    )
    total, warm = cfg.train.steps, warmup_steps(cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_schedule(s, total, warm)
    )
    return optimizer, scheduler


def wrap_model(model: LeadModel, cfg: Config, ds_json: dict | None, device: torch.device):
    """-> (module to call, updater, DeepSpeed engine or None). `model` must already be on `device`.

    Stage 0: DDP (through Ray's `prepare_model`, which skips the wrapper for one worker) and the
    local loop's updater. Stages 1-3: `deepspeed.initialize` with our optimizer and schedule;
    stage 3 partitions every parameter, the teacher's included.
    """
    if cfg.train.deepspeed.stage == 0:
        from ray.train.torch import prepare_model

        wrapped = prepare_model(model, move_to_device=False)
        return wrapped, LocalUpdater(model, cfg), None
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    optimizer, scheduler = build_optimizer(model, cfg)
    ds_cfg = deepspeed_config(cfg, ds_json)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_cfg
    )
    return engine, DeepSpeedUpdater(engine), engine
