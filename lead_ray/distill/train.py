"""`lead train` in this process: the plain local loop over `train_step`, with exact resume.

Writes into the train folder: config.yaml, metrics.jsonl, checkpoints/, student/ (and teacher/
when it trains), and manifest.json last. The Ray Train driver (lead_ray/distributed/train.py)
shares `open_train_folder`, so both backends agree on when a folder is
done and when it belongs to another config.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from lead_ray.config import Config, ConfigError
from lead_ray.distill.checkpoint import (
    config_fingerprint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)


class ResumeMismatch(ConfigError):
    """The output folder holds a run with a different config."""


def finished_training(out: Path, cfg: Config) -> dict | None:
    """The manifest of a complete training of this config (same fingerprint and steps), or None."""
    from lead_ray.storage import read_manifest

    done = read_manifest(out) or {}
    if done.get("complete") and (done.get("config"), done.get("steps")) == (
        config_fingerprint(cfg.to_dict()),
        cfg.train.steps,
    ):
        return done
    return None


def open_train_folder(out: Path, cfg: Config) -> dict | None:
    """Get the train folder ready for `cfg`: the manifest when this config already finished
    training there (nothing to do), else None after refusing another config's folder, removing
    what a killed writer left and saving the resolved config."""
    from lead_ray.config import save_resolved
    from lead_ray.storage import remove_stale_temps

    out.mkdir(parents=True, exist_ok=True)
    if (done := finished_training(out, cfg)) is not None:
        log.info("%s: training already complete, nothing to do", out)
        return done
    check_resumable(out, cfg)
    remove_stale_temps(out)
    save_resolved(cfg, out)
    return None


def check_resumable(out: Path, cfg: Config) -> None:
    """Refuse a folder whose saved config trains something else (only steps/logging may differ)."""
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
            "use another --out, or the same config (only train.steps and logging may change)"
        )


def fit_local(
    cfg: Config,
    out: Path,
    data,
    *,
    teacher_cache: Path | None = None,
    progress: bool = True,
    dev=None,
) -> dict:
    """Train in this process; resumes from the newest checkpoint in `out`.

    Args:
        data: the `TrainingData` (lead_ray/data/batching.py) batches are drawn from.
        teacher_cache: a teacher feature cache to answer a frozen dual-encoder teacher from.
        dev: a `DevSet` (lead_ray/distill/dev_eval.py) evaluated every `train.eval_every` steps;
            the best student goes to `out/student-best`.
    Returns:
        The manifest; a folder already complete for the same config is not trained again.
    """
    from lead_ray.distill.dev_eval import Selection, eval_interval
    from lead_ray.distill.lead_model import build_lead_model, pairs_at
    from lead_ray.distill.metrics_log import MetricsLog
    from lead_ray.distill.optim import LocalUpdater, train_step
    from lead_ray.distill.tracking import open_tracking
    from lead_ray.models.build import export_model
    from lead_ray.progress import bar
    from lead_ray.storage import remove_stale_temps

    out = Path(out)
    if (done := open_train_folder(out, cfg)) is not None:
        return done
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    fp = config_fingerprint(cfg.to_dict())
    model = build_lead_model(cfg, teacher_cache=teacher_cache)
    model.train()
    updater = LocalUpdater(model, cfg)
    selection = Selection(cfg, dev, eval_interval(cfg, dev is not None))
    ckpt_dir = out / "checkpoints"
    remove_stale_temps(ckpt_dir)
    start = 0
    if (ckpt := latest_checkpoint(ckpt_dir)) is not None:
        state = load_checkpoint(ckpt, model, updater)
        start = state["step"]
        selection.best.load(state.get("best"))
        log.info("resuming from %s (step %d)", ckpt, start)
    metrics_log = MetricsLog(out / "metrics.jsonl", start)
    steps, t0, last = cfg.train.steps, time.perf_counter(), start
    shown: dict = {}  # the last dev metrics, shown with every step's losses
    with bar("train", steps, enabled=progress) as pbar, open_tracking(cfg, out) as tracking:
        task = pbar.add_task("train", total=steps, completed=start, rate="", info="")
        try:
            for step in range(start, steps):
                pairs = pairs_at(model, cfg, step)
                batches = data.step_batches(step, cfg.train.batch_size, cfg.train.grad_accum)
                m = train_step(model, batches, pairs, updater, cfg.train.precision)
                m["step"] = last = step + 1
                m["queries_per_s"] = cfg.train.batch_size * len(batches) / m["step_time"]
                evaluated = selection.due(last)
                if evaluated:
                    dev_m, improved = selection.evaluate(model.student, last)
                    m.update(dev_m)
                    shown = dev_m
                    if improved:
                        export_model(model.student, out / "student-best")
                if last % cfg.train.log_every == 0 or last == steps or evaluated:
                    metrics_log.write(m)
                    tracking.log([m])
                rate = (last - start) / (time.perf_counter() - t0)
                pbar.update(
                    task, completed=last, info=step_info(shown | m), rate=f"{rate:.2f} steps/s"
                )
                stop = selection.best.should_stop
                if last % cfg.train.checkpoint_every == 0 or last == steps or stop:
                    extra = {"pairs": m["pairs"], "config": fp, "best": selection.best.state()}
                    ck = save_checkpoint(ckpt_dir, last, model, updater, extra,
                                         cfg.train.keep_checkpoints)  # fmt: skip
                    if cfg.train.export_every_checkpoint:
                        export_model(model.student, ck / "student")
                if stop:
                    log.info("early stop at step %d: %s", last, selection.best.state())
                    break
        finally:
            metrics_log.close()
    export_model(model.student, out / "student")
    if model.teacher_trains:
        export_model(model.teacher, out / "teacher")
    return finish_training(out, cfg, "local", time.perf_counter() - t0, selection, last)


def step_info(m: dict) -> str:
    """The progress line's free text for one metrics record: loss terms, and the dev metric."""
    text = (f"loss {m['loss']:.3f} (c {m['loss_contrastive']:.3f} r {m['loss_response']:.3f} "
            f"l {m['loss_layer']:.3f})")  # fmt: skip
    dev = [f"{k[4:]} {v:.4f}" for k, v in m.items() if k.startswith("dev_") and k != "dev_best"]
    return text + (" dev " + " ".join(dev[:2]) if dev else "")


def finish_training(out: Path, cfg: Config, backend: str, seconds: float, selection,
                    last: int, **facts) -> dict:  # fmt: skip
    """Write the train manifest (last): what trained, how long, and which student was selected
    (`student-best` by its dev score, or the last step's) and why."""
    from lead_ray.storage import fingerprint_folder, write_manifest

    best = selection.best
    chosen = (
        "student-best"
        if cfg.train.select == "best" and best.step and (out / "student-best").is_dir()
        else "student"
    )
    manifest = {
        "kind": "train",
        "complete": True,
        "steps": cfg.train.steps,
        "stopped_at": last,
        "early_stopped": last < cfg.train.steps,
        "config": config_fingerprint(cfg.to_dict()),
        "backend": backend,
        **facts,
        "student": fingerprint_folder(out / "student"),
        "selected": chosen,
        "selection": None
        if best.best == float("-inf")
        else {
            "metric": f"dev {best.metric}",
            "best": best.best,
            "best_step": best.step,
            "why": (
                f"highest dev {best.metric} ({best.best:.4f} at step {best.step} of {last})"
                if chosen == "student-best"
                else "train.select: last"
            ),
        },
        "seconds": seconds,
    }
    write_manifest(out, manifest)
    return manifest
