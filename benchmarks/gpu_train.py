"""A few Ray Train steps of the 12-layer ColBERT -> 6-layer DE recipe with random-init models of
the real sizes: throughput (samples/s) and peak GPU memory.

The config is configs/msmarco-passage-12cb-6de.yaml (bf16, DeepSpeed ZeRO-2, one worker per
GPU, in-batch candidates gathered across workers) with two substitutions, so it runs anywhere
without downloads: the models are built in code (a BERT-base-sized 12 x 768 ColBERT teacher and a
6 x 768 dual-encoder student, the bert-base-uncased vocabulary of the packaged MiniLM tokenizer),
and the data is a generated collection whose passages fill the 144-token limit, as MS MARCO
passages with their titles mostly do. `--cpu --tiny` runs the same path on CPU with tiny models
(a check of the script, not a measurement).

usage: benchmarks/gpu_train.sh [--steps 20] [--workers N] [--stage 2] [--precision bf16]
                               [--batch-size 8] [--out DIR] [--cpu] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "msmarco-passage-12cb-6de.yaml"
REAL = {
    "teacher": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072},
    "student": {"layers": 6, "hidden": 768, "heads": 12, "intermediate": 3072},
}
TINY = {
    "teacher": {"layers": 4, "hidden": 64, "heads": 2, "intermediate": 128},
    "student": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128},
}
WARMUP_STEPS = 3  # excluded from the timing (allocator, DeepSpeed buckets, first gathers)


def write_collection(folder: Path, docs: int, queries: int, seed: int = 0) -> Path:
    """A BEIR folder: passages of ~110 words (over 144 tokens), queries of ~8 words."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vo", "dar", "pel", "sor", "nu", "gal", "fen"]
    vocab = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))) for _ in range(5000)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    texts = [" ".join(rng.choices(vocab, k=110)) for _ in range(docs)]
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(
            json.dumps({"_id": f"d{i}", "title": t.split()[0], "text": t}) + "\n"
            for i, t in enumerate(texts)
        )
    with (
        open(folder / "queries.jsonl", "w", encoding="utf-8") as fh,
        open(folder / "qrels" / "train.tsv", "w", encoding="utf-8") as qrels,
    ):
        qrels.write("query-id\tcorpus-id\tscore\n")
        for q in range(queries):
            doc = rng.randrange(docs)
            words = rng.sample(texts[doc].split(), 6) + rng.choices(vocab, k=2)
            fh.write(json.dumps({"_id": f"q{q}", "text": " ".join(words)}) + "\n")
            qrels.write(f"q{q}\td{doc}\t1\n")
    return folder


def build_config(args, data_dir: Path):
    from lead_ray.config import Config

    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    sizes = TINY if args.tiny else REAL
    raw["data"] = {"beir": str(data_dir), "train_split": "train", "eval_split": "train"}
    raw["teacher"]["model"] = {"build": {**sizes["teacher"], "max_position": 512}}
    raw["student"]["model"] = {"build": {**sizes["student"], "max_position": 512}}
    train = raw["train"]
    train.update(
        steps=args.steps,
        checkpoint_every=args.steps,
        log_every=1,
        workers=args.workers,
        use_gpu=not args.cpu,
        precision=args.precision,
        batch_size=args.batch_size,
        max_failures=0,
        keep_checkpoints=1,
    )
    train["deepspeed"] = {
        "stage": args.stage,
        "config": f"configs/deepspeed/zero{args.stage}.json" if args.stage in (2, 3) else None,
    }
    if args.cpu:
        train["threads"] = 1
        raw["ray"]["num_cpus"] = max(2, args.workers)
    return Config.from_dict(raw, source=str(CONFIG))


def summarize(out: Path, cfg) -> dict:
    records = [
        json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()
    ]
    timed = [r["step_time"] for r in records[WARMUP_STEPS:]] or [r["step_time"] for r in records]
    step = statistics.median(timed)
    t = cfg.train
    queries = t.batch_size * t.workers
    peak = max((r.get("mem_peak_gib", 0.0) for r in records), default=0.0)
    return {
        "steps_timed": len(timed),
        "median_step_s": step,
        "steps_per_s": 1 / step,
        "queries_per_s": queries / step,
        "passages_per_s": queries * (1 + t.negatives) / step,
        "peak_gpu_mem_gib": peak if t.use_gpu else None,
        "final_loss": records[-1]["loss"],
        "workers": t.workers,
        "stage": t.deepspeed.stage,
        "precision": t.precision,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=20)
    p.add_argument(
        "--workers", type=int, default=None, help="default: every visible GPU (2 with --cpu)"
    )
    p.add_argument("--stage", type=int, default=2, choices=[0, 1, 2, 3])
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--batch-size", type=int, default=8, help="queries per worker")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--cpu", action="store_true", help="run on CPU workers (a check of the script)")
    p.add_argument("--tiny", action="store_true", help="tiny models instead of the real sizes")
    args = p.parse_args(argv)

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print(
            "no CUDA device: run on an NVIDIA GPU machine, or check the script with --cpu --tiny",
            file=sys.stderr,
        )
        return 2
    if args.workers is None:
        args.workers = 2 if args.cpu else torch.cuda.device_count()
    from lead_ray.stages.dispatch import run_stage
    from lead_ray.stages.run import Run

    os.chdir(REPO)  # the config names configs/deepspeed/*.json relative to the repository
    out = args.out or Path(tempfile.mkdtemp(prefix="lead-gpu-train-"))
    data = write_collection(out / "collection", docs=4000, queries=2000)
    run = Run(build_config(args, data), out / "run", progress=True)
    run_stage(run, "train")  # Ray Train (build_config sets train.backend: ray)
    result = summarize(run.layout.train, run.cfg)
    device = "CPU" if args.cpu else torch.cuda.get_device_name(0)
    result["device"] = f"{args.workers} x {device}"
    result["models"] = (
        "tiny 4x64 ColBERT -> 2x64 DE" if args.tiny else "12x768 ColBERT -> 6x768 DE (random init)"
    )
    print(json.dumps(result, indent=2))
    mem = (
        "n/a (CPU)"
        if result["peak_gpu_mem_gib"] is None
        else f"{result['peak_gpu_mem_gib']:.2f} GiB"
    )
    print(
        f"\n{result['device']}, {result['models']}, {args.precision}, ZeRO-{args.stage}: "
        f"{result['queries_per_s']:.1f} samples/s (training queries; "
        f"{result['passages_per_s']:.1f} passages/s, "
        f"{result['steps_per_s']:.2f} steps/s), peak GPU memory per worker {mem}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
