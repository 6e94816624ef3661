"""Scale rehearsal: an MS MARCO-shaped synthetic collection through the real `lead` stages.

    python benchmarks/scale_rehearsal.py --passages 1000000 --out runs/scale/1m
    python benchmarks/scale_rehearsal.py --passages 0 --documents 200000 --out runs/scale/d200k
    python benchmarks/scale_rehearsal.py --report runs/scale --docs docs   # table + plots

What it does, per collection (passages, then documents with MaxP):
1. generates the collection straight to Parquet, 100k rows at a time (never whole in memory):
   passage ids "0".."N-1" with bodies of log-normal length (mean ~56 words, as MS MARCO's
   8.8M passages); documents "D0".. with url, title and bodies of log-normal length (mean
   ~1,100 words, at least enough words to fill every MaxP window); 6,980 queries (the size of
   MS MARCO dev). Words are the whole-word entries of the packaged MiniLM vocabulary, drawn
   Zipf-like, so tokenisation costs what real English costs;
2. writes a config with a micro student built in code (2 layers, 64 wide, 64 tokens) and runs
   `lead prepare`, `lead encode` (Ray Data, 2 actors), `lead index` (IVF-PQ trained once on a
   sample), `lead search` (the 6,980 queries, k=100, ANN recall against exact search) as
   subprocesses, each timed, its whole process tree's peak memory sampled (PSS: shared pages
   counted once; Ray's processes included), its output's bytes on disk measured;
3. optionally (`--kill-encode-at F`) kills the encode process group once a fraction F of the
   shards is written and reruns it: the second run must encode only the shards not finished;
4. writes DIR/rehearsal.json: stages, rows, the planner's predictions next to the measurements.

Nothing here is a product feature: it drives the public CLI like a user would.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LEAD = [sys.executable, "-m", "lead_ray.cli.main"]
CHUNK = 100_000  # rows generated and written at a time
DEV_QUERIES = 6_980  # MS MARCO passage dev (small)
MAX_LENGTH = 64  # tokens per passage / MaxP window
WINDOWS = 4  # MaxP windows kept per document


# ----------------------------------------------------------------------------- the collection


def vocabulary() -> list[str]:
    """Whole-word entries of the packaged MiniLM WordPiece vocabulary (no ##pieces, no
    [specials], letters only), most frequent first as the file lists them."""
    from lead_ray.models.backbone import resolve_model_path

    vocab = Path(resolve_model_path("all-MiniLM-L6-v2")) / "vocab.txt"
    words = [w for w in vocab.read_text(encoding="utf-8").split("\n") if w.isalpha()]
    return words[200:]  # skip the rarest-looking head (single letters, unused slots)


def _texts(rng, words, lengths: np.ndarray):
    """One space-joined text per length, words drawn Zipf-like (rank r with weight 1/(r+10))."""
    import pyarrow as pa
    import pyarrow.compute as pc

    weights = 1.0 / (np.arange(len(words)) + 10.0)
    cdf = np.cumsum(weights / weights.sum())
    idx = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), len(words) - 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(words).take(pa.array(idx)))
    return pc.binary_join(lists, " ")


def _lengths(rng, n: int, mean: float, sigma: float, lo: int, hi: int) -> np.ndarray:
    """Log-normal lengths with the given mean, clipped to [lo, hi]. [n] int64"""
    mu = math.log(mean) - sigma**2 / 2
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), lo, hi).astype(np.int64)


def write_collection(path: Path, rows: int, kind: str, seed: int = 0) -> int:
    """Generate `rows` passages or documents into the Parquet file `path` (atomically, chunk by
    chunk); returns the file's bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    words, rng = vocabulary(), np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            if kind == "passages":  # MS MARCO passages: mean ~56 words, no titles
                table = pa.table(
                    {
                        "doc_id": pa.array(np.arange(start, start + n).astype(str)),
                        "text": _texts(rng, words, _lengths(rng, n, 56, 0.45, 4, 250)),
                    }
                )
            else:  # documents: url, title (~8 words), body (mean ~1,100 words)
                ids = np.char.add("D", np.arange(start, start + n).astype(str))
                table = pa.table(
                    {
                        "doc_id": pa.array(ids),
                        "url": pa.array(np.char.add("http://example.org/", ids)),
                        "title": _texts(rng, words, _lengths(rng, n, 8, 0.4, 2, 30)),
                        "text": _texts(
                            rng, words, _lengths(rng, n, 1100, 0.8, WINDOWS * MAX_LENGTH, 20_000)
                        ),
                    }
                )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def write_queries(path: Path, n: int, seed: int = 1) -> None:
    """`n` queries as `qid<TAB>text` (mean ~6 words, as MS MARCO's)."""
    words, rng = vocabulary(), np.random.default_rng(seed)
    texts = _texts(rng, words, _lengths(rng, n, 6, 0.35, 2, 20)).to_pylist()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"q{i}\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- measuring


class TreeMemory:
    """Samples a process and all its descendants every `every` s from a thread; `peak` is the
    largest sum of their PSS (RSS where PSS is unreadable): shared pages counted once. Not more
    often: one reading of a dozen Ray processes costs 0.1-0.4 s of CPU on 2 cores."""

    def __init__(self, pid: int, every: float = 5.0):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:  # smaps_rollup: one cheap read per process (Linux >= 4.14)
                text = Path(f"/proc/{p.pid}/smaps_rollup").read_text()
                total += 1024 * int(
                    next(x for x in text.splitlines() if x.startswith("Pss:")).split()[1]
                )
            except (OSError, StopIteration):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.every)


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_lead(args: list[str], log: Path, kill_when=None) -> dict:
    """`lead ARGS` in its own process session: wall seconds, peak tree memory, exit code;
    `kill_when()` true kills the whole session (SIGKILL), as a lost machine would."""
    t0 = time.perf_counter()
    env = {**os.environ, "LEAD_PROGRESS_SECONDS": "60"}
    with open(log, "a") as fh:
        fh.write(f"\n$ lead {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.Popen(
            [*LEAD, *args], stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        killed = False
        with TreeMemory(proc.pid) as mem:
            while proc.poll() is None:
                if kill_when is not None and not killed and kill_when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                time.sleep(0.2)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and not killed:
        raise RuntimeError(f"lead {args[0]} exited {proc.returncode}; see {log}")
    return {"seconds": round(seconds, 2), "peak_bytes": mem.peak, "killed": killed}


# ----------------------------------------------------------------------------- one rehearsal


def nlist_for(rows: int) -> int:
    """IVF lists: a power of two near 4 sqrt(rows), 256..16384 (FAISS's usual guidance)."""
    return int(min(16384, max(256, 2 ** round(math.log2(4 * math.sqrt(rows))))))


def shard_rows(rows: int) -> int:
    """100k-row shards (the default), fewer rows for small rehearsals so that they have ~10."""
    return int(min(100_000, max(1_000, rows // 10)))


def rehearsal_config(
    corpus: Path, queries: Path, rows: int, maxp: bool, actors: int, pq: str = "PQ16"
) -> dict:
    nlist = nlist_for(rows * (WINDOWS if maxp else 1))
    build = {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128, "seed": 0}
    model = {"max_query_length": 16, "max_doc_length": MAX_LENGTH}
    return {
        "name": "scale-rehearsal",
        "data": {"corpus": str(corpus), "queries": str(queries), "title": maxp},
        # mean pooling: a random-init encoder's CLS vectors are all alike (cosine ~1), its mean
        # of token vectors is a bag of words, so ANN recall measures something
        "teacher": {"kind": "dual_encoder", "model": {"build": build}, "pooling": "mean", **model},
        "student": {"model": {"init_from": "teacher"}, **model},
        "encode": {
            "model": "student-init",
            "batch_size": 128,
            "shard_rows": shard_rows(rows),
            "actors": actors,
            "cpus_per_actor": 1,
            "threads": 1,
            "doc_mode": "maxp" if maxp else "firstp",
            "maxp_passages": WINDOWS,
        },
        # faiss wants ~39 training points per list; PQ16: 16 sub-quantizers of 4 dims, 8 bits
        # (training them costs ~30 s on 2 cores whatever the sample; PQ16x4fs, 4 bits, ~0.1 s)
        "index": {"factory": f"IVF{nlist},{pq}", "train_sample": 40 * nlist, "nprobe": 32},
        "search": {"k": 100, "batch_size": 1024, "exact_check": True},
    }


def shards_done(folder: Path) -> dict[str, tuple[int, int]]:
    """{shard file: (inode, mtime)} of the shards the manifest lists as written."""
    path = folder / "manifest.json"
    shards = json.loads(path.read_text())["shards"] if path.is_file() else []
    files = [folder / f"shard-{e['shard']:05d}.parquet" for e in shards]
    return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files if f.is_file()}


def rehearse(
    kind: str, rows: int, out: Path, actors: int, kill_at: float | None, pq: str = "PQ16"
) -> dict:
    """One collection through prepare -> encode -> index -> search; the record."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    log, maxp = out / "rehearsal.log", kind == "documents"
    corpus, queries = out / "data" / f"{kind}.parquet", out / "data" / "queries.tsv"
    record: dict = {"kind": kind, "rows": rows, "maxp": maxp, "stages": {}}
    t0 = time.perf_counter()
    if not corpus.is_file():
        write_collection(corpus, rows, kind)
        write_queries(queries, DEV_QUERIES)
    record["stages"]["generate"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "disk_bytes": disk_bytes(corpus),
    }
    cfg_dict = rehearsal_config(corpus, queries, rows, maxp, actors, pq)
    config = out / "rehearsal.yaml"
    config.write_text(yaml.safe_dump(cfg_dict, sort_keys=False), encoding="utf-8")
    run = out / "run"
    common = ["--out", str(run), "--no-progress"]
    emb = run / "embeddings" / "student-init"
    stages = [
        ("prepare", ["prepare", str(config), *common], run / "corpus"),
        ("encode", ["encode", str(config), *common, "--system", "student-init"], emb),
        ("index", ["index", str(config), *common, "--system", "student-init"],
         run / "index" / "student-init"),
        ("search", ["search", str(config), *common, "--system", "student-init"], run / "runs"),
    ]  # fmt: skip
    for name, args, output in stages:
        kill = None
        if name == "encode" and kill_at:
            total = math.ceil(rows / cfg_dict["encode"]["shard_rows"])

            def kill(total=total):
                return len(shards_done(emb)) >= max(1, round(kill_at * total))

            first = run_lead(args, log, kill)
            before = shards_done(emb)
            record["encode_killed"] = {**first, "shards_done": len(before), "shards": total}
        result = run_lead(args, log)
        if name == "encode" and kill_at:
            after = shards_done(emb)  # written again or for the first time by the rerun
            redone = sorted(f for f, st in after.items() if before.get(f) != st)
            record["encode_killed"]["redone"] = len(redone)
            record["encode_killed"]["rewritten_finished"] = sorted(set(redone) & set(before))
        result["disk_bytes"] = disk_bytes(output)
        if name == "encode":
            manifest = json.loads((emb / "manifest.json").read_text())
            result["rows_encoded"] = manifest["rows"]
            result["vectors"] = sum(e["rows"] for e in manifest["shards"])
            result["shards"] = len(manifest["shards"])
        result["rows_per_s"] = round(rows / result["seconds"], 1) if result["seconds"] else None
        record["stages"][name] = result
    summary = json.loads((run / "runs" / "student-init" / "test.json").read_text())
    record["search"] = {k: summary.get(k) for k in ("queries", "k", "factory", "search_qps",
                                                    "ann_recall", "ann_recall_10")}  # fmt: skip
    record["plan"] = planned(out, record["stages"]["encode"]["vectors"])
    record["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    atomic_json(out / "rehearsal.json", record)
    return record


PLANNED = ("embedding_bytes", "index_bytes", "encode_worker_bytes", "index_task_bytes",
           "train_bytes", "search_bytes")  # fmt: skip


def planned(out: Path, vectors: int) -> dict[str, int]:
    """What the planner (`lead_ray.corpus.planner`, as it is now) predicts for a rehearsal."""
    import yaml

    from lead_ray.config import Config
    from lead_ray.corpus.planner import plan_from_config

    cfg = Config.from_dict(yaml.safe_load((out / "rehearsal.yaml").read_text()), "rehearsal")
    run = out / "run"
    plan = plan_from_config(cfg, vectors, 64, model_params=_params(run), hidden=64)
    return {k: getattr(plan, k) for k in PLANNED}


def _params(run: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in (run / "models" / "student-init").glob("*.safetensors"):
        with safe_open(str(f), "np") as fh:
            total += sum(int(np.prod(fh.get_slice(k).get_shape())) for k in fh.keys())
    return total


def atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- report

STAGES = ("prepare", "encode", "index", "search")


def report(root: Path, docs: Path) -> None:
    """Every `rehearsal.json` under `root` -> `docs/scale-rehearsal.json` (the rows of the
    tables) and `docs/scale-rehearsal.png` (time and peak memory per stage against rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for path in sorted(root.rglob("rehearsal.json")):
        r = json.loads(path.read_text())
        if "stages" not in r:  # the per-invocation summary: its records are found on their own
            continue
        rows.append(
            {
                "kind": r["kind"],
                "rows": r["rows"],
                "vectors": r["stages"]["encode"]["vectors"],
                **{f"{s}_s": r["stages"][s]["seconds"] for s in STAGES},
                **{f"{s}_peak": r["stages"][s]["peak_bytes"] for s in STAGES},
                **{f"{s}_disk": r["stages"][s]["disk_bytes"] for s in STAGES},
                "recall_10": r["search"].get("ann_recall_10"),
                "recall_100": r["search"].get("ann_recall"),
                "killed": r.get("encode_killed"),
                # the whole encode: the killed run and the rerun that finished it
                "encode_total_s": r["stages"]["encode"]["seconds"]
                + (r.get("encode_killed") or {}).get("seconds", 0),
                "plan": planned(path.parent, r["stages"]["encode"]["vectors"]),
            }
        )
    rows.sort(key=lambda x: (x["kind"], x["rows"]))
    atomic_json(docs / "scale-rehearsal.json", {"runs": rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, marker in (("passages", "o"), ("documents", "s")):
        sel = [x for x in rows if x["kind"] == kind]
        if not sel:
            continue
        n = [x["rows"] / 1e6 for x in sel]
        for stage in STAGES:
            key = "encode_total_s" if stage == "encode" else f"{stage}_s"
            axes[0].plot(n, [x[key] / 60 for x in sel], marker=marker,
                         label=f"{kind}: {stage}")  # fmt: skip
            axes[1].plot(n, [x[f"{stage}_peak"] / 2**30 for x in sel], marker=marker,
                         label=f"{kind}: {stage}")  # fmt: skip
    axes[0].set(xlabel="rows (millions)", ylabel="wall minutes", title="time per stage")
    axes[1].set(xlabel="rows (millions)", ylabel="GiB (PSS, process tree)",
                title="peak memory per stage")  # fmt: skip
    axes[1].set_ylim(bottom=0)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    tmp = docs / "scale-rehearsal.tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, docs / "scale-rehearsal.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=0)
    ap.add_argument("--documents", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--kill-encode-at", type=float, default=None)
    ap.add_argument("--pq", default="PQ16", help="the IVF index's codes (faiss factory part)")
    ap.add_argument("--report", type=Path, help="tabulate and plot every rehearsal under DIR")
    ap.add_argument("--docs", type=Path, default=REPO / "docs")
    args = ap.parse_args(argv)
    if args.report:
        report(args.report, args.docs)
        return 0
    if args.out is None or not (args.passages or args.documents):
        ap.error("give --out DIR and --passages N and/or --documents M (or --report DIR)")
    records = {}
    for kind, rows in (("passages", args.passages), ("documents", args.documents)):
        if rows:
            records[kind] = rehearse(
                kind, rows, args.out / kind, args.actors, args.kill_encode_at, args.pq
            )
    atomic_json(args.out / "rehearsal.json", records)
    for kind, r in records.items():
        print(kind, r["rows"], json.dumps(r["stages"]), r["search"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
