"""Sizes and peak memory of encoding and indexing a corpus, computed before anything runs.

Index sizes follow FAISS's storage layouts (float32 flat codes, int32 HNSW links, int64 ids in
IDMap or IVF lists, coarse and PQ centroids), checked against measured files in the tests.
Peak-memory figures are estimates: they add the big buffers a stage holds at once plus a fixed
runtime allowance, so treat them as "will it fit", not as a measurement. `check_plan` refuses a
plan that does not fit, naming the number. No torch, faiss or ray here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

DTYPE_BYTES = {"float32": 4, "float16": 2}
MiB, GiB = 1 << 20, 1 << 30
ENCODE_RUNTIME = 768 * MiB  # python + torch + tokenizer (MiniLM encoder RSS ~1 GiB incl. model)
INDEX_RUNTIME = 256 * MiB  # python + numpy + pyarrow + faiss
DOC_ID_BYTES = 16  # assumed average stored doc_id length (+ offsets) per row
KMEANS_MAX_POINTS = 256  # faiss k-means subsamples to 256 points per centroid


class PlanError(ValueError):
    """A plan that cannot run: it does not fit in memory, or the corpus is too small for it."""


class UnsizedFactory(PlanError):
    """A factory string the planner cannot size (faiss may still build it: no plan, no check)."""


@dataclass(frozen=True)
class FactorySpec:
    """The parts of a faiss factory string that decide its size."""

    d_out: int  # dim after an OPQ rotation (= dim without one)
    opq: bool = False
    ivf: int = 0  # nlist; 0 = no IVF
    coarse_hnsw: int = 0  # M of an IVFn_HNSWm coarse quantizer
    hnsw: int = 0  # M of an HNSW graph over the vectors
    code_bytes: int = 0  # per vector
    fixed_bytes: int = 0  # codebooks / scalar-quantizer ranges
    fast_scan: bool = False
    refine_flat: bool = False
    pq: tuple[int, int] | None = None  # (m, bits)
    trained: bool = False  # needs training (IVF, PQ, SQ, OPQ)


_SQ = {"SQ8": 1.0, "SQ6": 0.75, "SQ4": 0.5, "SQfp16": 2.0, "SQbf16": 2.0}
_HNSW_NODE = 12  # per-node offset (int64) + level (int32)


def _hnsw_bytes(m: int) -> float:
    """Bytes per node: 2M level-0 links + M per upper level (about 1/(M-1) levels) + bookkeeping."""
    return (2 * m + m / (m - 1)) * 4 + _HNSW_NODE


def parse_factory(factory: str, dim: int) -> FactorySpec:
    """Parse Flat, HNSWm[,Flat|SQ8], [OPQm[_d],]IVFn[_HNSWm],PQm[xb][fs]|Flat|SQ8[,RFlat], SQ8."""
    fields: dict = {"d_out": dim}
    has_codec = False
    for token in (t.strip() for t in factory.split(",")):
        d = fields["d_out"]
        if m := re.fullmatch(r"OPQ(\d+)(?:_(\d+))?", token):
            fields.update(opq=True, trained=True, d_out=int(m[2] or dim))
        elif m := re.fullmatch(r"IVF(\d+)(?:_HNSW(\d+))?", token):
            fields.update(ivf=int(m[1]), coarse_hnsw=int(m[2] or 0), trained=True)
        elif m := re.fullmatch(r"HNSW(\d+)", token):
            fields["hnsw"] = int(m[1])
        elif token == "Flat":
            has_codec = True
            fields["code_bytes"] = 4 * d
        elif token in _SQ:  # codes + per-dimension (min, range)
            has_codec = True
            fields.update(code_bytes=math.ceil(_SQ[token] * d), fixed_bytes=8 * d, trained=True)
        elif m := re.fullmatch(r"PQ(\d+)(?:x(\d+))?(fs)?", token):
            pq_m, bits = int(m[1]), int(m[2] or 8)
            if d % pq_m:
                raise PlanError(f"{factory}: {token} needs a dim divisible by {pq_m}, got {d}")
            has_codec = True
            fields.update(
                pq=(pq_m, bits),
                code_bytes=math.ceil(pq_m * bits / 8),
                trained=True,
                fixed_bytes=(1 << bits) * d * 4,
                fast_scan=bool(m[3]),
            )
        elif token in ("RFlat", "Refine(Flat)"):
            fields["refine_flat"] = True
        elif token != "IDMap":
            raise UnsizedFactory(
                f"{factory}: the planner cannot size {token!r} (known: Flat, HNSWm, "
                "IVFn[_HNSWm], PQm[xb][fs], SQ8/SQ6/SQ4/SQfp16, OPQm[_d], RFlat)"
            )
    if not has_codec:
        if not fields.get("hnsw"):
            raise UnsizedFactory(
                f"{factory}: no vector codec (Flat, SQ8, PQm) in the factory string"
            )
        fields["code_bytes"] = 4 * fields["d_out"]  # "HNSW32" alone stores flat vectors
    return FactorySpec(**fields)


def estimate_index_bytes(factory: str, rows: int, dim: int, with_ids: bool = True) -> int:
    """Size of a faiss index over `rows` vectors (the file; about the same in RAM).

    Args:
        with_ids: count the int64 ids (IDMap or IVF lists); our shard indexes always have them.
    """
    spec = parse_factory(factory, dim)
    d = spec.d_out
    per_row = spec.code_bytes + (8 if with_ids or spec.ivf else 0)
    fixed = spec.fixed_bytes + (dim * d * 4 if spec.opq else 0)
    if spec.hnsw:
        per_row += _hnsw_bytes(spec.hnsw)
    if spec.ivf:
        fixed += spec.ivf * d * 4 + spec.ivf * 16  # centroids + per-list sizes
        if spec.coarse_hnsw:
            fixed += spec.ivf * _hnsw_bytes(spec.coarse_hnsw)
        if spec.fast_scan:  # lists are padded to blocks of 32 codes: ~16 per list
            fixed += spec.ivf * 16 * spec.code_bytes
    if spec.refine_flat:  # a flat copy for re-ranking; an IDMap around it adds a second id
        per_row += 4 * dim + (8 if with_ids and spec.ivf else 0)
    return int(rows * per_row + fixed)


@dataclass(frozen=True)
class Plan:
    """Every size in bytes. Per-worker/per-task figures are peaks for one process."""

    rows: int
    dim: int
    dtype: str
    factory: str
    shards: int
    shard_rows: int
    workers: int
    embedding_bytes: int  # whole embeddings folder
    index_bytes: int  # the index folder: every shard index (each holds the trained parts)
    merged_index_bytes: int  # one index over every row (what `index.merge` adds)
    index_shard_bytes: int  # the largest shard index
    train_bytes: int  # training the quantizer on the sample (0: no training)
    encode_worker_bytes: int  # one encoder: runtime + weights + activations + a shard buffer
    index_task_bytes: int  # one shard task: runtime + shard vectors + trained + shard index
    search_bytes: int  # query encoder + the largest index loaded at once + one embedding shard
    merge_bytes: int  # merging in memory (Flat); an on-disk IVF merge needs only the quantizer
    merge: bool = False


def make_plan(
    rows: int,
    dim: int,
    *,
    dtype: str = "float32",
    factory: str = "Flat",
    shard_rows: int = 100_000,
    batch_size: int = 64,
    max_length: int = 128,
    model_params: int = 22_700_000,
    hidden: int | None = None,
    workers: int = 1,
    train_sample: int = 100_000,
    merge: bool = False,
) -> Plan:
    """Sizes and peak memory for encoding `rows` passages into `dim`-d vectors and indexing them.

    Args:
        model_params: encoder parameter count (weights held in float32).
        hidden: the encoder's hidden size (default: `dim`); heads are hidden / 64.
        workers: encode workers (each is a separate process with its own peak).
    """
    if rows < 1 or dim < 1 or shard_rows < 1:
        raise PlanError(
            f"rows, dim and shard_rows must be positive (got {rows}, {dim}, {shard_rows})"
        )
    check_training_points(factory, dim, min(train_sample, rows))
    width = DTYPE_BYTES[dtype]
    shard = min(shard_rows, rows)
    hidden = hidden or dim
    heads = max(1, hidden // 64)
    # inference activations: a few [B, L, H] tensors, the [B, L, 4H] MLP, [B, heads, L, L] attention
    activations = batch_size * max_length * (8 * hidden + 2 * heads * max_length) * 4
    encode = (
        ENCODE_RUNTIME + model_params * 4 + activations + shard * (dim * width + 8 + DOC_ID_BYTES)
    )
    trained = estimate_index_bytes(factory, 0, dim)
    shard_index = estimate_index_bytes(factory, shard, dim)
    total_index = estimate_index_bytes(factory, rows, dim)
    full, rest = divmod(rows, shard)
    shard_files = full * shard_index + (estimate_index_bytes(factory, rest, dim) if rest else 0)
    sample = min(train_sample, rows)
    spec = parse_factory(factory, dim)
    train = 0
    if spec.trained:
        kmeans = min(sample, KMEANS_MAX_POINTS * max(spec.ivf, 1))
        # sample + its residuals/rotation + the k-means subsample + assignments
        train = (
            INDEX_RUNTIME
            + sample * (dim + spec.d_out) * 4
            + kmeans * (spec.d_out * 4 + 16)
            + trained
        )
    shard_vectors = shard * dim * (width + (4 if width != 4 else 0))  # parquet + float32 copy
    task = INDEX_RUNTIME + shard_vectors + trained + shard_index
    on_disk = bool(spec.ivf) and not spec.refine_flat
    return Plan(
        rows=rows,
        dim=dim,
        dtype=dtype,
        factory=factory,
        shards=math.ceil(rows / shard_rows),
        shard_rows=shard_rows,
        workers=workers,
        embedding_bytes=rows * (dim * width + 8 + DOC_ID_BYTES),
        index_bytes=shard_files + (total_index if merge else 0),
        merged_index_bytes=total_index,
        index_shard_bytes=shard_index,
        train_bytes=train,
        encode_worker_bytes=encode,
        index_task_bytes=task,
        # `lead search` encodes the queries (torch + the model), then searches one index at a
        # time; the exact check against ANN reads one embedding shard at a time
        search_bytes=ENCODE_RUNTIME
        + model_params * 4
        + (trained if merge and on_disk else total_index if merge else shard_index)
        + shard * dim * 4,
        merge_bytes=(INDEX_RUNTIME + trained) if on_disk else INDEX_RUNTIME + total_index,
        merge=merge,
    )


def training_points_needed(spec: FactorySpec) -> int:
    """The fewest training vectors faiss's k-means accepts: one per coarse centroid (IVF) and
    one per PQ code (2^bits per sub-quantizer)."""
    return max(spec.ivf, (1 << spec.pq[1]) if spec.pq else 0)


def check_training_points(factory: str, dim: int, sample: int) -> None:
    """PlanError when the training sample (`index.train_sample`, at most the corpus) is smaller
    than the factory's k-means needs: faiss would fail deep inside its training."""
    need = training_points_needed(parse_factory(factory, dim))
    if need > sample:
        raise PlanError(
            f"index.factory {factory!r} trains on at least {need:,} vectors; only {sample:,} are "
            "available (the corpus or index.train_sample): use fewer IVF lists, fewer PQ bits, "
            "or Flat / HNSW32 for a corpus this small"
        )


def plan_from_config(
    cfg, rows: int, dim: int, model_params: int, hidden: int | None = None
) -> Plan:
    """`make_plan` with the encode/index settings of a `lead_ray.config.Config`."""
    model = cfg.teacher if cfg.encode.model == "teacher" else cfg.student
    return make_plan(
        rows,
        dim,
        dtype=cfg.encode.dtype,
        factory=cfg.index.factory,
        shard_rows=cfg.encode.shard_rows,
        batch_size=cfg.encode.batch_size,
        max_length=cfg.encode.max_length or model.max_doc_length,
        model_params=model_params,
        hidden=hidden,
        workers=cfg.encode.actors,
        train_sample=cfg.index.train_sample,
        merge=cfg.index.merge,
    )


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


_CHECKS = (  # (field, what, how to shrink it)
    (
        "encode_worker_bytes",
        "peak memory per encode worker",
        "lower encode.batch_size or max_length",
    ),
    (
        "index_task_bytes",
        "peak memory per index task",
        "lower encode.shard_rows or compress the index (e.g. IVF...,PQ or HNSW32,SQ8)",
    ),
    ("train_bytes", "index training memory", "lower index.train_sample"),
    (
        "search_bytes",
        "memory to search one index file",
        "keep shards apart (index.merge=false) or compress the index",
    ),
    ("merge_bytes", "memory to merge the shard indexes", "set index.merge=false"),
)


def check_plan(plan: Plan, memory_limit_bytes: int) -> None:
    """Raise PlanError naming every figure above `memory_limit_bytes` (one process's limit)."""
    problems = []
    for name, what, hint in _CHECKS:
        value = getattr(plan, name)
        if name == "merge_bytes" and not plan.merge:
            continue
        if value > memory_limit_bytes:
            problems.append(
                f"{what} is {fmt_bytes(value)} ({name}={value}), above the limit of "
                f"{fmt_bytes(memory_limit_bytes)}: {hint}"
            )
    if problems:
        head = f"plan for {plan.rows:,} x {plan.dim} {plan.dtype}, {plan.factory!r} does not fit:"
        raise PlanError("\n  ".join([head, *problems]))


def format_plan(plan: Plan) -> str:
    """A readable table of the plan."""
    rows = [
        (
            "corpus",
            f"{plan.rows:,} x {plan.dim} {plan.dtype}, {plan.shards} shards of "
            f"{plan.shard_rows:,}, {plan.workers} encode worker(s)",
        ),
        ("factory", plan.factory),
    ]
    for key, value in asdict(plan).items():
        if key.endswith("_bytes"):
            rows.append((key.removesuffix("_bytes").replace("_", " "), fmt_bytes(value)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
