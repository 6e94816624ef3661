"""What Ray Train and DeepSpeed cost per step, and what LEAD's layer term costs, on one machine.

On the tiny config (configs/tiny.yaml: 4-layer teacher, 2-layer student, 8 queries x 2 passages
per worker, 1 torch thread per process) and the same number of steps:

1. Backends. The plain local loop (training.fit_local) and Ray Train with one and two workers,
   DDP path (stage 0) and DeepSpeed ZeRO-2; with two workers the candidates are gathered across
   them (32 instead of 16). Per run: the median step time from metrics.jsonl (forward + backward +
   gradient exchange + optimizer; the first 5 steps left out), steps/s, queries/s, their ratios
   to the local loop, and the run's wall time including start-up.
2. LEAD vs response KD. One process alternates LEAD steps (K = 2 layer pairs) and response-KD-only
   steps (no layer pairs, so no layer states are scored) on the same model and batches, for a
   dual-encoder and a ColBERT teacher; interleaving keeps a neighbour's CPU burst from landing on
   one side only. Ratio of the median step times.

usage: .venv/bin/python benchmarks/train_overhead.py [--steps 60] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
SKIP = 5  # warm-up steps left out of the median

BACKENDS = [  # name, overrides
    ("local loop", []),
    ("ray 1 worker DDP", ["train.backend=ray", "train.workers=1", "train.deepspeed.stage=0"]),
    ("ray 1 worker ZeRO-2", ["train.backend=ray", "train.workers=1", "train.deepspeed.stage=2"]),
    ("ray 2 workers DDP", ["train.backend=ray", "train.workers=2", "train.deepspeed.stage=0"]),
    ("ray 2 workers ZeRO-2", ["train.backend=ray", "train.workers=2", "train.deepspeed.stage=2"]),
]
TEACHERS = [("dual encoder", []), ("ColBERT", ["teacher.kind=colbert"])]


def run_backend(overrides: list[str], steps: int, folder: Path) -> dict:
    from lead_ray.config import load_config
    from lead_ray.stages.dispatch import run_stage
    from lead_ray.stages.run import Run

    cfg = load_config(TINY, [f"train.steps={steps}", f"train.checkpoint_every={steps}", *overrides])
    run = Run(cfg, folder, progress=False)
    t0 = time.perf_counter()
    run_stage(run, "train")  # the local loop or Ray Train, as train.backend says
    wall = time.perf_counter() - t0
    lines = run.layout.train_metrics.read_text().splitlines()
    records = [json.loads(ln) for ln in lines if ln.strip()]
    step = statistics.median(r["step_time"] for r in records[SKIP:])
    workers = cfg.train.workers if cfg.train.backend == "ray" else 1
    return {"median_step_s": step, "steps_per_s": 1 / step,
            "queries_per_s": cfg.train.batch_size * workers / step,
            "candidates": records[-1]["candidates"], "wall_s": wall}  # fmt: skip


def lead_vs_response(overrides: list[str], steps: int, folder: Path) -> dict:
    """Median step time of LEAD steps and of response-KD-only steps, interleaved."""
    import torch

    from lead_ray.config import load_config
    from lead_ray.distill.lead_model import build_lead_model, pairs_at
    from lead_ray.distill.optim import LocalUpdater, train_step
    from lead_ray.stages.run import Run

    cfg = load_config(TINY, overrides)
    torch.set_num_threads(cfg.train.threads or 1)
    data = Run(cfg, folder, progress=False).training_data()
    model = build_lead_model(cfg).train()
    updater = LocalUpdater(model, cfg)
    times: dict[str, list[float]] = {"lead": [], "response": []}
    for step in range(steps):
        for kind in ("lead", "response") if step % 2 == 0 else ("response", "lead"):
            pairs = pairs_at(model, cfg, step) if kind == "lead" else []
            batch = data.batch(step, cfg.train.batch_size)
            times[kind].append(train_step(model, batch, pairs, updater)["step_time"])
    lead, response = (statistics.median(times[k][SKIP:]) for k in ("lead", "response"))
    return {"lead_step_s": lead, "response_step_s": response, "ratio": lead / response}


def machine() -> str:
    import torch
    from machine import cpu_model

    return (f"{os.cpu_count()} CPU cores ({cpu_model()}); torch {torch.__version__}, "
            "one torch thread "
            f"per process (configs/tiny.yaml); Python {platform.python_version()}")  # fmt: skip


def print_tables(backends: dict[str, dict], kd: dict[str, dict], header: str) -> None:
    base = backends["local loop"]
    print(header)
    print(f"{'backend':22s} {'step ms':>8s} {'steps/s':>8s} {'x local':>8s} {'queries/s':>10s} "
          f"{'x local':>8s} {'cands':>6s} {'wall s':>7s}")  # fmt: skip
    for name, r in backends.items():
        print(f"{name:22s} {1000 * r['median_step_s']:8.1f} {r['steps_per_s']:8.2f} "
              f"{r['steps_per_s'] / base['steps_per_s']:8.2f} {r['queries_per_s']:10.1f} "
              f"{r['queries_per_s'] / base['queries_per_s']:8.2f} {r['candidates']:6d} "
              f"{r['wall_s']:7.1f}")  # fmt: skip
    print(f"\n{'teacher':14s} {'LEAD step ms':>13s} {'response-KD ms':>15s} {'LEAD / resp.':>13s}")
    for name, r in kd.items():
        print(f"{name:14s} {1000 * r['lead_step_s']:13.1f} {1000 * r['response_step_s']:15.1f} "
              f"{r['ratio']:13.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    for key, value in env.items():
        os.environ.setdefault(key, value)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lead-overhead-") as tmp:
        backends, kd = {}, {}
        for i, (name, overrides) in enumerate(BACKENDS):
            backends[name] = run_backend(overrides, args.steps, Path(tmp) / f"run{i}")
            print(f"{name:22s} done in {backends[name]['wall_s']:.1f} s", file=sys.stderr)
        for name, overrides in TEACHERS:
            kd[name] = lead_vs_response(overrides, args.steps, Path(tmp) / "kd")
    load_after = os.getloadavg()[0]
    ray.shutdown()
    header = (f"machine: {machine()}\n"
              f"steps: {args.steps}, medians over steps {SKIP + 1}..{args.steps}; "
              f"1-min load average {load_before:.1f} before, {load_after:.1f} after\n")  # fmt: skip
    print_tables(backends, kd, header)
    if args.json:
        record = {"machine": machine(), "steps": args.steps, "load": [load_before, load_after],
                  "backends": backends, "lead_vs_response": kd}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
