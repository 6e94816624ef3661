"""SciFact quality benchmark: does LEAD beat response-only KD and contrastive-only training?

Everything starts from the packaged all-MiniLM-L6-v2. Protocol (fixed before any test number):
  1. Carve a dev split (10% of train queries, seed 0) out of SciFact train; mine hard negatives
     for the rest with the un-tuned MiniLM (top-100, every positive dropped, 30 kept).
  2. Warm up each teacher kind alone on those examples (its own contrastive loss; DE/ColBERT
     see in-batch + hard negatives, the cross-encoder each query's own 1+n candidates).
  3. Distil 2-layer students (from the teacher's lower blocks, or random init) with
     (a) contrastive only, (b) + response KD, (c) + LEAD, for each seed; the frozen DE teacher's
     per-layer vectors come from a feature cache (lead_ray/modeling/cached.py).
  4. Evaluate every student and the teachers on dev and test (nDCG@10, RR@10, R@100); every
     choice (hyper-parameters, which teacher) looks at dev only. ColBERT and cross-encoder
     teachers re-rank the DE teacher's top-k (the budget's `rerank_depth`).
Cells, budgets and methods: benchmarks/quality_grid.py. Tables and plots: quality_report.py.

    .venv/bin/python benchmarks/quality.py --budget small --out runs/quality   # ~1 h, 2 cores
    .venv/bin/python benchmarks/quality.py --budget small --out runs/quality \
        --cells 'de/teacher-init/lead-*' --seeds 1                             # extra cells
    .venv/bin/python benchmarks/quality.py --out runs/quality --report         # docs/results.md
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_grid import BUDGETS, KIND_NAMES, Budget, Cell, RunRecord, select_cells  # noqa: E402

from lead_ray.config import Config, apply_override  # noqa: E402
from lead_ray.stages.dispatch import run_stage  # noqa: E402
from lead_ray.stages.layout import RunLayout  # noqa: E402
from lead_ray.stages.pipeline import evaluate_system  # noqa: E402
from lead_ray.stages.run import Run  # noqa: E402
from lead_ray.storage import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "benchmarks" / "configs" / "scifact-quality.yaml"
WARMUP_SEED = 888  # the LEAD scripts' seed; one warm-up per teacher kind
SPLITS = ("dev", "test")
FIRST_STAGE = "de-teacher"  # the DE teacher's run, as the re-rankers' first stage
log = logging.getLogger("quality")
LOG_FORMAT = "%(asctime)s %(processName)s %(name)s %(message)s"


@dataclass
class Bench:
    """What every stage shares: the output folder, budget, base config and the data."""

    out: Path
    budget: Budget
    base: dict
    progress: bool = False
    examples: Path | None = None  # the mined training examples every student run reads

    @property
    def reference(self) -> str:
        """The un-tuned starting model (the base config's teacher: the packaged MiniLM)."""
        return self.base["teacher"]["model"]

    def config(self, settings: list[str]) -> Config:
        """The base config + the budget's overrides + `settings`; after mining, every run
        trains on the shared mined examples."""
        data = copy.deepcopy(self.base)
        if self.examples is not None:
            data["data"]["examples"] = str(self.examples)
            dev_candidates = self.examples.parent / "dev.trec"  # mined with the examples
            if dev_candidates.is_file():
                data["train"]["dev_run"] = str(dev_candidates)
        for item in [*self.budget.overrides, *settings]:
            apply_override(data, item)
        return Config.from_dict(data, source=f"{BASE_CONFIG.name} + {settings}")


def load_base(path: Path, data_dir: str | None) -> dict:
    base = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data_dir:
        base["data"]["beir"] = data_dir
    return base


# ----------------------------------------------------------------------------- stages


def bench_run(bench: Bench, folder: Path, cfg: Config) -> Run:
    """A run folder of the benchmark: its own layout, the shared corpus store."""
    return Run(cfg, RunLayout(folder, corpus_dir=bench.out / "corpus"), progress=bench.progress)


def evaluate(run: Run, system: str) -> dict[str, dict]:
    """dev and test metrics of one system of `run` (one corpus encoding shared by both splits)."""
    return {split: evaluate_system(run, system, split) for split in SPLITS}


def prepare(bench: Bench) -> None:
    """Shared corpus store and mined examples, mined with the packaged model as it ships (mean
    pooling, cosine), which is also evaluated: the "un-tuned" reference row."""
    root = bench_run(bench, bench.out, bench.config([f"mine.model={bench.reference}"]))
    run_stage(root, "mine")
    bench.examples = root.layout.examples
    evaluate(root, bench.reference)


def first_stage(bench: Bench, run: Run) -> None:
    """A ColBERT / cross-encoder teacher re-ranks the DE teacher's runs, copied in as its first
    stage."""
    de = RunLayout(bench.out / "teachers" / "de")
    for split in SPLITS:
        target = run.layout.run_file(FIRST_STAGE, split)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(de.run_file("teacher", split), target)


def warm_up(bench: Bench, cell: Cell) -> Path:
    """Train one teacher kind alone; evaluate it; returns its model folder."""
    folder = bench.out / "teachers" / cell.teacher
    settings = [
        f"train.seed={WARMUP_SEED}",
        f"train.steps={bench.budget.warmup_steps}",
        f"train.lr={bench.budget.warmup_lr}",
        f"search.first_stage={FIRST_STAGE}",
        f"search.rerank_depth={bench.budget.rerank_depth}",
        *cell.settings(WARMUP_SEED),
    ]
    run = bench_run(bench, folder, bench.config(settings))
    model = run.layout.trained_model("teacher")
    if (folder / "record.json").is_file():
        return model
    copy_first_stage = (lambda: first_stage(bench, run)) if cell.teacher != "de" else None
    all_settings = [*bench.budget.overrides, *settings]
    record = train_and_evaluate(
        run, "teacher", cell.name, WARMUP_SEED, all_settings, copy_first_stage
    )
    _write_record(folder, record)
    shutil.rmtree(run.layout.checkpoints, ignore_errors=True)
    return model


def train_and_evaluate(
    run: Run, system: str, cell: str, seed: int, settings: list[str], before=None
) -> RunRecord:
    """Train (the train stage), then evaluate `system` on dev and test: the run's record."""
    manifest = run_stage(run, "train")
    t = time.perf_counter()
    if before is not None:
        before()
    ev = evaluate(run, system)
    return RunRecord(
        cell,
        seed,
        ev["dev"]["metrics"],
        ev["test"]["metrics"],
        manifest.get("seconds", 0.0),
        time.perf_counter() - t,
        run.cfg.train.steps,
        settings,
    )


def teacher_model(bench: Bench, kind: str, choice: str) -> str:
    """The teacher folder students learn from. For the DE: the warmed-up MiniLM, unless it does
    not beat the un-tuned MiniLM on dev (then stop: pass --teacher untuned to use that)."""
    warmed = RunLayout(bench.out / "teachers" / kind).trained_model("teacher")
    if kind != "de" or choice == "warm":
        return str(warmed)
    if choice == "untuned":
        return bench.reference
    untuned = RunLayout(bench.out).system(bench.reference).name
    dev = {
        name: json.loads(layout.evaluation(system, "dev").read_text())["metrics"]["nDCG@10"]
        for name, layout, system in (
            ("warm", RunLayout(bench.out / "teachers/de"), "teacher"),
            ("untuned", RunLayout(bench.out), untuned),
        )
    }
    log.info(
        "DE teacher on dev: warmed-up nDCG@10 %.4f, un-tuned %.4f", dev["warm"], dev["untuned"]
    )
    if dev["warm"] <= dev["untuned"]:
        raise SystemExit(
            f"the warmed-up DE teacher does not beat the un-tuned MiniLM on dev ({dev}); "
            "rerun with --teacher untuned (or --teacher warm) to decide explicitly"
        )
    return str(warmed)


def student_init(bench: Bench, teacher: str) -> None:
    """The 2-layer student before any training (the teacher's embeddings and first two blocks):
    the row every teacher-init cell starts from."""
    run = bench_run(
        bench, bench.out / "systems" / "student-init", bench.config([f"teacher.model={teacher}"])
    )
    evaluate(run, "student-init")


def feature_cache(bench: Bench, teacher: str) -> Path:
    """The frozen DE teacher's per-layer vectors over every training text (`lead cache-teacher`)."""
    run = bench_run(bench, bench.out / "cache" / "de", bench.config([f"teacher.model={teacher}"]))
    run_stage(run, "cache-teacher")
    return run.layout.teacher_cache


def own_tokenizer(bench: Bench, vocab: int = 8000) -> Path:
    """A WordPiece vocabulary of the student's own, trained on SciFact passages + train queries."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    from lead_ray.data.examples import read_examples

    folder = bench.out / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return folder
    run = bench_run(bench, bench.out, bench.config([]))
    _, texts = run.store.get(list(range(len(run.store))))
    train_queries = [run.queries[ex.query_id] for ex in read_examples(bench.examples)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        list(texts) + train_queries,
        trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    fast.save_pretrained(folder)
    return folder


def run_cell(bench: Bench, cell: Cell, seed: int, teacher: str, cache: Path | None) -> RunRecord:
    """Train one student (one seed) and evaluate it on dev and test (cached in record.json), and
    the teacher too when it trained along with the student."""
    folder = bench.out / "cells" / cell.name / f"seed-{seed}"
    if (folder / "record.json").is_file():
        record = RunRecord(**json.loads((folder / "record.json").read_text(encoding="utf-8")))
    else:
        record = _train_cell(bench, cell, seed, teacher, cache, folder)
    trained_teacher_eval(bench, folder)
    return record


def _train_cell(
    bench: Bench, cell: Cell, seed: int, teacher: str, cache: Path | None, folder: Path
) -> RunRecord:
    settings = [
        f"train.seed={seed}",
        f"train.steps={bench.budget.steps}",
        f"train.lr={bench.budget.lr}",
        f"teacher.kind={KIND_NAMES[cell.teacher]}",
        f"teacher.model={teacher}",
    ]
    if cell.cached_teacher and cache is not None:
        settings.append(f"teacher.cache={cache}")
    tokenizer = str(own_tokenizer(bench)) if "own-tokenizer" in cell.name else ""
    run = bench_run(bench, folder, bench.config(settings + cell.settings(seed, tokenizer)))
    log.info(
        "cell %s seed %d: %s", cell.name, seed, " ".join(settings + cell.settings(seed, tokenizer))
    )
    all_settings = [*bench.budget.overrides, *settings, *cell.settings(seed, tokenizer)]
    record = train_and_evaluate(run, "student", cell.name, seed, all_settings)
    _write_record(folder, record)
    shutil.rmtree(run.layout.checkpoints, ignore_errors=True)
    shutil.rmtree(run.layout.index("student"), ignore_errors=True)
    return record


def trained_teacher_eval(bench: Bench, folder: Path) -> None:
    """A teacher trained along with its student (`lead-joint`) is evaluated like the warmed-up
    one, as the cell run's `teacher` system, so the report can say what joint training did to it."""
    run = bench_run(bench, folder, bench.config([]))
    if (
        run.layout.trained_model("teacher").is_dir()
        and not run.layout.evaluation("teacher", "test").is_file()
    ):
        evaluate(run, "teacher")
        shutil.rmtree(run.layout.index("teacher"), ignore_errors=True)


def _write_record(folder: Path, record: RunRecord) -> None:
    atomic_write_json(folder / "record.json", asdict(record))


# ----------------------------------------------------------------------------- driver


def machine_info() -> dict:
    import platform

    import torch
    from machine import cpu_model

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }


def _init_worker() -> None:
    """A student-run worker: logs like the driver and dies with it (Linux), so stopping the
    driver never leaves orphans training on and writing records into the output folder."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run(
    bench: Bench, cells: list[Cell], seeds: list[int], teacher_choice: str, jobs: int = 1
) -> None:
    """Shared stages in this process, then every (student cell, seed), `jobs` at a time."""
    t0, info = time.time(), {"start": machine_info()}
    prepare(bench)
    warm_up(bench, next(c for c in select_cells(["teacher/de"]) if c.warmup))
    for cell in (c for c in cells if c.warmup and c.teacher != "de"):
        warm_up(bench, cell)
    tasks, cache = [], None
    for cell in (c for c in cells if not c.warmup):
        teacher = teacher_model(bench, cell.teacher, teacher_choice)
        if cell.cached_teacher and cache is None:
            cache = feature_cache(bench, teacher)
            student_init(bench, teacher)
        tasks += [
            (bench, cell, seed, teacher, cache if cell.cached_teacher else None) for seed in seeds
        ]
    if cells and any("own-tokenizer" in c.name for c in cells):
        own_tokenizer(bench)  # once, before workers race to build it
    if jobs > 1:  # one torch thread per worker: robust on a shared, oversubscribed machine
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        ) as pool:
            records = list(pool.map(run_cell, *zip(*tasks, strict=True))) if tasks else []
    else:
        records = [run_cell(*task) for task in tasks]
    for rec in records:
        log.info(
            "%s seed %d: dev nDCG@10 %.4f", rec.cell, rec.seed, rec.dev.get("nDCG@10", float("nan"))
        )
    info.update(
        end=machine_info(),
        wall_seconds=time.time() - t0,
        budget=bench.budget.name,
        cells=[c.name for c in cells],
        seeds=seeds,
        jobs=jobs,
        argv=sys.argv[1:],
    )
    runs = bench.out / "invocations.jsonl"
    with open(runs, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(info) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    p.add_argument(
        "--config", type=Path, default=BASE_CONFIG, help="base config (default: %(default)s)"
    )
    p.add_argument(
        "--data", default=None, help="BEIR folder (default: the base config's data.beir)"
    )
    p.add_argument(
        "--cells",
        nargs="*",
        default=None,
        help="glob patterns of cell names (default: the budget's)",
    )
    p.add_argument("--seeds", type=int, nargs="*", default=None, help="default: the budget's")
    p.add_argument(
        "--teacher",
        choices=["auto", "warm", "untuned"],
        default="auto",
        help="DE teacher: the warmed-up one if it beats the un-tuned MiniLM on dev (auto)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra key.path=value for every cell (e.g. a tiny test setting)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="student runs in parallel, one torch thread each (shared stages use 1 process)",
    )
    p.add_argument("--report", action="store_true", help="write docs/results.md + plots from --out")
    p.add_argument("--docs", type=Path, default=REPO / "docs")
    p.add_argument("--progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = parse_args(argv)
    if args.report:
        from quality_report import write_results

        write_results(args.out, args.docs)
        return
    budget = BUDGETS[args.budget]
    extra = [*(["train.threads=1", "encode.threads=1"] if args.jobs > 1 else []), *args.overrides]
    if extra:
        budget = Budget(**{**asdict(budget), "overrides": (*budget.overrides, *extra)})
    bench = Bench(args.out, budget, load_base(args.config, args.data), progress=args.progress)
    bench.out.mkdir(parents=True, exist_ok=True)
    cells = select_cells(args.cells or list(budget.cells))
    run(bench, cells, args.seeds or list(budget.seeds), args.teacher, args.jobs)


if __name__ == "__main__":
    main()
