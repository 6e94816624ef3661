"""`lead train --set train.backend=ray`: the local loop's `train_step` on Ray Train workers.

The driver (`run_training`) checks the config, builds the corpus store once, starts a
`TorchTrainer` (one worker per `train.workers`, CPU or GPU) and finally copies the consolidated
student out of the last checkpoint. Each worker (`train_loop_per_worker`) rebuilds the run
(config and run folder) from plain data, builds teacher and student from the core, wraps them
with DDP or DeepSpeed ZeRO (lead_ray/distributed/engine.py), takes its deterministic slice of
every global batch (`TrainingData.batch(step, B, rank, world)`: the same data order on every
rank and across a resume), gathers in-batch candidates across workers, and reports metrics
and checkpoints.

The train folder (`RunLayout.train`) has the local loop's layout:
  train/config.yaml  metrics.jsonl  student/ [teacher/]  manifest.json (written last)
  train/checkpoints/step-XXXXXXXX/   Ray Train's run folder (`ray.storage` moves it elsewhere)
A rerun with the same --out resumes from the newest complete checkpoint; a worker that dies is
restarted from it (`train.max_failures`). Every node must see the data files and --out at the
same paths (one machine or a shared filesystem); checkpoints may live in object storage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

from lead_ray.config import Config, ConfigError
from lead_ray.distill.checkpoint import config_fingerprint
from lead_ray.distill.dev_eval import Selection, eval_interval
from lead_ray.distill.lead_model import build_lead_model, no_gather, pairs_at
from lead_ray.distill.optim import train_step
from lead_ray.distill.tracking import open_tracking
from lead_ray.distill.train import finish_training, open_train_folder
from lead_ray.distributed.checkpointing import export_consolidated, load_state, save_state, skeleton
from lead_ray.distributed.engine import read_deepspeed_json, wrap_model
from lead_ray.distributed.gather import GATHERS, agree, all_reduce_mean, reduce_metrics
from lead_ray.distributed.metrics import follow_metrics, metrics_writer
from lead_ray.stages.run import Run
from lead_ray.storage import atomic_dir, is_uri

log = logging.getLogger(__name__)

RUN_NAME = "checkpoints"  # Ray Train's run folder inside --out (the local loop's name)
REPORT_SECONDS = 10.0  # buffered metric records reach metrics.jsonl at least this often


def run_training(run: Run) -> dict:
    """Train on Ray Train workers into `run.layout.train`; returns the manifest (as
    `distill.train.fit_local` does). The caller (`stages.dispatch`) has started or joined Ray.

    Raises:
        ConfigError / DataError: bad config or data (found on the driver, before any worker starts).
        ray.train.TrainingFailedError: workers kept failing after `train.max_failures` restarts.
    """
    cfg = run.cfg
    out = run.layout.train.resolve()  # Ray Train wants absolute storage paths
    ds_json = read_deepspeed_json(cfg)
    _check_models(cfg)
    if (done := open_train_folder(out, cfg)) is not None:
        return done
    # Build (or reopen) the corpus store and read the examples here, once: workers only reopen
    # them, and data errors surface as one clear message instead of a worker traceback.
    run.training_data()
    _require_workers(cfg)
    run.dev_set()  # checked here too: a missing dev run is one message, not a worker's
    t0 = time.perf_counter()
    fp = config_fingerprint(cfg.to_dict())
    trainer = _trainer(run, out, fp, ds_json)
    with (
        open_tracking(cfg, out) as tracking,
        follow_metrics(out / "metrics.jsonl", cfg.train.steps, run.progress, tracking.log),
    ):
        result = _fit(trainer)
    with result.checkpoint.as_directory() as d:
        final = Path(d)
        for name in ("student", "teacher"):
            if (final / name).is_dir():
                with atomic_dir(out / name) as tmp:
                    shutil.copytree(final / name, tmp, dirs_exist_ok=True)
    with result.checkpoint.as_directory() as d:
        state = json.loads((Path(d) / "state.json").read_text(encoding="utf-8"))
    selection = Selection(cfg, None, 0)
    selection.best.load(state.get("best"))
    return finish_training(
        out, cfg, "ray", time.perf_counter() - t0, selection, state["step"],
        workers=cfg.train.workers, use_gpu=cfg.train.use_gpu,
        deepspeed_stage=cfg.train.deepspeed.stage, precision=cfg.train.precision,
        checkpoint=result.checkpoint.path,
    )  # fmt: skip


def _check_models(cfg: Config) -> None:
    """Model folders and tokenizers exist (cheap; a worker would fail later and less clearly)."""
    from lead_ray.models.backbone import resolve_model_path

    for role in (cfg.teacher, cfg.student):
        names = [
            role.source.path,
            role.tokenizer,
            role.source.build and role.source.build.tokenizer,
        ]
        for name in filter(None, names):
            resolve_model_path(name)


def worker_resources(cfg: Config) -> dict[str, float] | None:
    """What each Ray Train worker asks for: one GPU (or one CPU) plus `train.worker_resources`
    (None: Ray Train's default, the same without extras)."""
    extra = cfg.train.worker_resources
    if not extra:
        return None
    return {("GPU" if cfg.train.use_gpu else "CPU"): 1.0, **extra}


def _require_workers(cfg: Config) -> None:
    from lead_ray.distributed.session import require_resources

    kind = "GPU" if cfg.train.use_gpu else "CPU"
    n = cfg.train.workers
    require_resources(cfg, kind, n, f"train.workers={n} (one {kind} each)")
    for name, amount in cfg.train.worker_resources.items():
        require_resources(cfg, name, n * amount, f"train.workers={n} (train.worker_resources "
                          f"{name}={amount:g} each)")  # fmt: skip


def _trainer(run: Run, out: Path, fp: str, ds_json: dict):
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = run.cfg
    if cfg.ray.storage is None:
        storage, name = str(out), RUN_NAME
    else:  # the same config resumes from the same run folder, whatever --out is
        storage = (
            cfg.ray.storage if is_uri(cfg.ray.storage) else str(Path(cfg.ray.storage).resolve())
        )
        name = f"{cfg.name}-{fp}"
    loop_config = {"run": run.to_dict(), "fingerprint": fp, "deepspeed": ds_json}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=cfg.train.workers,
            use_gpu=cfg.train.use_gpu,
            resources_per_worker=worker_resources(cfg),
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            callbacks=[metrics_writer(str(out / "metrics.jsonl"))],
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )


def _fit(trainer):
    """`trainer.fit()`; a config or data error raised inside a worker is re-raised as itself."""
    from ray.train import WorkerGroupError

    from lead_ray.data.errors import DataError

    try:
        return trainer.fit()
    except WorkerGroupError as err:
        for exc in err.worker_failures.values():
            while exc is not None:
                if isinstance(exc, (ConfigError, DataError)):
                    raise exc from None
                exc = exc.__cause__
        raise


# ----------------------------------------------------------------------------- the worker


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: rebuild the config, build, wrap, resume, train, report."""
    _Worker(config).run()


class _Worker:
    """One worker's models, data and pending metric records."""

    def __init__(self, config: dict):
        import ray.train
        import ray.train.torch

        run = Run.from_dict(config["run"])
        self.cfg = cfg = run.cfg
        self.fingerprint = config["fingerprint"]
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.device = ray.train.torch.get_device()
        _quiet(self.device)
        self.data = run.training_data()
        dev = run.dev_set()
        self.selection = Selection(cfg, dev, eval_interval(cfg, dev is not None))
        self.best_dir = run.layout.trained_model("student-best")
        gather = GATHERS[cfg.train.gradients] if self.world > 1 else no_gather
        self.model = model = build_lead_model(
            cfg, gather, self.rank, self.world, run.teacher_cache(), reduce=all_reduce_mean
        )
        self.stage = stage = cfg.train.deepspeed.stage
        self.shells = {}  # rank 0's export targets, copied before DeepSpeed converts the weights
        if self.rank == 0:
            self.shells["student"] = skeleton(model.student) if stage else model.student
            if model.teacher_trains:
                self.shells["teacher"] = skeleton(model.teacher) if stage else model.teacher
        model.to(self.device)
        model.train()
        self.wrapped, self.updater, self.engine = wrap_model(
            model, cfg, config["deepspeed"], self.device
        )
        self.records: list[dict] = []
        self.last_flush = time.monotonic()

    def _parts(self) -> dict:
        return {"model": self.model, "updater": self.updater, "engine": self.engine,
                "rank": self.rank, "world": self.world, "stage": self.stage}  # fmt: skip

    def resume(self) -> int:
        """The step of the checkpoint Ray hands this worker group (0 without one)."""
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return 0
        with ckpt.as_directory() as d:
            state = load_state(Path(d), **self._parts())
        if state["config"] != self.fingerprint:
            raise ConfigError(f"checkpoint {ckpt.path} belongs to a different config")
        self.selection.best.load(state.get("best"))
        log.info("rank %d: resuming from %s (step %d)", self.rank, ckpt.path, state["step"])
        return state["step"]

    def report(self, step: int, pairs, checkpoint: bool, export: bool) -> None:
        """Hand rank 0's pending records (and, at a checkpoint, every rank's part) to Ray."""
        import ray.train

        metrics = {"step": step, "records": self.records if self.rank == 0 else []}
        if not checkpoint:
            ray.train.report(metrics)
        else:
            with tempfile.TemporaryDirectory(prefix="lead-ckpt-") as tmp:
                extra = {"pairs": pairs, "config": self.fingerprint,
                         "best": self.selection.best.state()}  # fmt: skip
                save_state(Path(tmp), step=step, extra=extra, **self._parts())
                teacher = step == self.cfg.train.steps and self.model.teacher_trains
                names = (["student", "teacher"] if teacher else ["student"]) if export else []
                for name in names:
                    export_consolidated(getattr(self.model, name), self.shells.get(name),
                                        Path(tmp) / name, self.stage, self.rank)  # fmt: skip
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                                 checkpoint_dir_name=f"step-{step:08d}")  # fmt: skip
        self.records, self.last_flush = [], time.monotonic()

    def run(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        start = self.resume()
        for step in range(start, t.steps):
            pairs = pairs_at(self.model, cfg, step)
            micro = self.data.step_batches(step, t.batch_size, t.grad_accum, self.rank, self.world)
            m = train_step(self.wrapped, micro, pairs, self.updater, t.precision, self.device.type)
            m["step"] = done = step + 1
            m["queries_per_s"] = t.batch_size * t.grad_accum * self.world / m["step_time"]
            if self.device.type == "cuda":
                m["mem_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            evaluated, stop = self.selection.due(done), False
            flush = False
            if done % t.log_every == 0 or done == t.steps or evaluated:
                m = reduce_metrics(m, self.device) if self.world > 1 else m
                m["resumed_from"] = start
                if evaluated:
                    m.update(self.evaluate(done))
                    stop = self.selection.best.should_stop
                    stop = agree(stop, self.device) if self.world > 1 else stop
                self.records.append(m)
                late = self.rank == 0 and time.monotonic() - self.last_flush > REPORT_SECONDS
                flush = agree(late, self.device) if self.world > 1 else late  # same on all ranks
            if done % t.checkpoint_every == 0 or done == t.steps or stop:
                export = done == t.steps or stop or t.export_every_checkpoint
                self.report(done, m["pairs"], True, export)
            elif flush:
                self.report(done, m["pairs"], False, False)
            if stop:
                log.info("rank %d: early stop at step %d", self.rank, done)
                return
        if start >= t.steps:  # resumed at or past the end: still hand the driver a final export
            pairs = [list(p) for p in pairs_at(self.model, cfg, max(start - 1, 0))]
            self.report(start, pairs, True, True)

    def evaluate(self, step: int) -> dict:
        """Dev metrics after `step` on every rank (the same dev set: under ZeRO-3 the forward
        passes gather parameters together); a new best is exported to train/student-best."""
        metrics, improved = self.selection.evaluate(self.model.student, step)
        if improved:
            export_consolidated(self.model.student, self.shells.get("student"),
                                self.best_dir, self.stage, self.rank)  # fmt: skip
        return metrics


def _quiet(device: torch.device) -> None:
    """Keep worker logs to what matters: DeepSpeed's accelerator guess, the deprecation notices
    torch prints for DeepSpeed's collectives, and Ray Train's INFO line echoing every report
    (its logger is named after its file, so `LoggingConfig` misses it) are noise here."""
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    with contextlib.suppress(ImportError):
        from ray.train.v2._internal.execution import context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r".*torch\.distributed\.\w+` is deprecated", category=FutureWarning
    )
