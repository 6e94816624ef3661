"""Local training checkpoints (exact resume) and the exported Hugging Face model folders.

checkpoints/step-00000040/   (built under a temporary name, renamed when complete)
  model.safetensors          student + teacher weights (LeadModel state dict)
  optimizer.pt               optimizer + LR scheduler state (torch.save; read with weights_only)
  rng.safetensors            torch RNG state (dropout), so a resume continues the same stream
  state.json                 step, layer pairs, config fingerprint
checkpoints/latest           name of the newest complete checkpoint (atomic)

Exported models (`student/`, `teacher/`) are the formats users load: see models/build.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lead_ray.storage import atomic_dir, atomic_write_text

LATEST = "latest"


def config_fingerprint(cfg_dict: dict) -> str:
    """Hash of everything that changes what training computes (not steps/logging cadence)."""
    cfg = json.loads(json.dumps(cfg_dict))
    for key in (
        "steps",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "export_every_checkpoint",
        "max_failures",
        "worker_resources",  # where the workers run (spot or not), not what they compute
        "threads",
        "eval_every",
        "eval_depth",
        "eval_queries",
        "eval_metric",
        "dev_run",
        "early_stop",
        "select",
    ):
        cfg.get("train", {}).pop(key, None)
    train = cfg.get("train", {})
    # keys that cannot change this run's computation stay out, so that a run written before
    # they existed still resumes: one process has no cross-worker gradients, and one
    # micro-batch per step is what every run did before `grad_accum`
    if train.get("backend") != "ray" or train.get("workers") == 1:
        train.pop("gradients", None)
    if train.get("grad_accum") == 1:
        train.pop("grad_accum")
    for section in ("mine", "encode", "index", "search", "evaluate", "track", "ray", "name"):
        cfg.pop(section, None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def _state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(
    folder: Path, step: int, model: torch.nn.Module, updater, extra: dict, keep: int
) -> Path:
    """Write checkpoint `step-XXXXXXXX` atomically, point `latest` at it, prune old ones."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{step:08d}"
    with atomic_dir(target) as tmp:
        save_file(_state_tensors(model), str(tmp / "model.safetensors"))
        torch.save(updater.state_dict(), tmp / "optimizer.pt")
        save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(
            json.dumps({"step": step, **extra}, indent=2), encoding="utf-8"
        )
    atomic_write_text(folder / LATEST, target.name + "\n")
    for old in sorted(p for p in folder.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    pointer = folder / LATEST
    if pointer.is_file():
        candidate = folder / pointer.read_text(encoding="utf-8").strip()
        if (candidate / "state.json").is_file():
            return candidate
    complete = sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file())
    return complete[-1] if complete else None


def load_checkpoint(path: Path, model: torch.nn.Module, updater) -> dict:
    """Restore weights, optimizer, scheduler and RNG; returns state.json."""
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    updater.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch"])
    return json.loads((path / "state.json").read_text(encoding="utf-8"))
