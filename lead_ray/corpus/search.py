"""Search a sharded index and merge per-shard top-k exactly; brute-force search over embedding
shards (ground truth); recall of ANN against exact. Turning ids into documents and runs is
`lead_ray/corpus/ids.py`'s job.

Results are `(scores [Q, K] float32, doc_idx [Q, K] int64)`, best first (inner product: highest
first; l2: smallest distance first). A slot with no result (fewer than K vectors reachable) has
doc_idx -1 and score -inf (ip) or +inf (l2). Ties: the merge is exact, so a sharded Flat
search equals one index over all vectors up to the order of equal scores (when equal scores
straddle the K-th place, the earlier shard's is kept) and up to float rounding: a shard's BLAS
sums can differ from one big index's in the last bit, which may swap two near-tied ids
(measured in docs/search-benchmark.md at 200k x 384). Nothing here knows models or Ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lead_ray.corpus.embeddings import iter_shards, read_vectors
from lead_ray.corpus.index import KIND, METRICS
from lead_ray.data.errors import DataError
from lead_ray.storage import read_manifest

Results = tuple[np.ndarray, np.ndarray]  # scores [Q, k] float32, doc_idx [Q, k] int64
# (queries, k, [(index file, on disk)], search settings) -> each file's Results, in file order
ShardMap = Callable[[np.ndarray, int, list[tuple[Path, bool]], dict[str, Any]], Iterable[Results]]


def read_index_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a complete index folder; DataError otherwise."""
    manifest = read_manifest(folder)
    where = Path(folder) / "manifest.json"
    if manifest is None or manifest.get("kind") != KIND:
        raise DataError(where, "not an index folder (no index manifest)")
    if not manifest.get("complete"):
        raise DataError(
            where, "the index build is not complete (rerun it to finish)", field="complete"
        )
    return manifest


def index_paths(folder: str | os.PathLike, manifest: dict[str, Any]) -> list[tuple[Path, bool]]:
    """`(path, on_disk)` of what to search: the merged index when there is one, else every shard."""
    merged = manifest.get("merged")
    if merged:
        return [(Path(folder) / merged["file"], merged["ivfdata"] is not None)]
    return [(Path(folder) / e["file"], False) for e in manifest["shards"]]


def open_index(path: str | os.PathLike, on_disk: bool = False) -> faiss.Index:
    """Read an index file. Flat codes are mmapped (IO_FLAG_MMAP_IFC: no copy into RAM); a merged
    on-disk IVF index is read with its `.ivfdata` beside it and never with IO_FLAG_MMAP, which
    segfaults at search time (faiss 1.15)."""
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR if on_disk else faiss.IO_FLAG_MMAP_IFC
    return faiss.read_index(str(path), flags)


def set_search_params(
    index: faiss.Index, nprobe: int | None = None, ef_search: int | None = None
) -> None:
    """Set IVF `nprobe` / HNSW `efSearch` through any wrappers (IDMap, OPQ, refine)."""
    space = faiss.ParameterSpace()
    for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
        if value is None:
            continue
        try:
            space.set_index_parameter(index, name, int(value))
        except RuntimeError:
            key = "nprobe" if name == "nprobe" else "ef_search"
            raise ValueError(
                f"index.{key} does not apply to a {type(index).__name__} index"
            ) from None


def as_queries(q_emb: np.ndarray, dim: int) -> np.ndarray:
    """[Q, D] contiguous float32 queries; ValueError for another shape."""
    q = np.ascontiguousarray(q_emb, dtype=np.float32)  # [Q, D]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must be [Q, {dim}], got {q.shape}")
    return q


def search_shard(
    path: str | os.PathLike,
    q_emb: np.ndarray,
    k: int,
    *,
    on_disk: bool = False,
    nprobe: int | None = None,
    ef_search: int | None = None,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one index file for every query, in query batches: ([Q, k] float32, [Q, k] int64)."""
    index = open_index(path, on_disk)
    set_search_params(index, nprobe, ef_search)
    q = as_queries(q_emb, index.d)
    scores = np.empty((len(q), k), np.float32)
    ids = np.empty((len(q), k), np.int64)
    for i in range(0, len(q), batch_size):
        scores[i : i + batch_size], ids[i : i + batch_size] = index.search(q[i : i + batch_size], k)
    return scores, ids


def merge_results(
    parts: Iterable[tuple[np.ndarray, np.ndarray]], n_queries: int, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over per-shard results ([Q, k_s] each, any k_s), consumed one at a time."""
    heap = faiss.ResultHeap(n_queries, k, keep_max=metric == "ip")
    for scores, ids in parts:
        heap.add_result(scores, ids)
    heap.finalize()
    missing = heap.I < 0
    heap.D[missing] = -np.inf if metric == "ip" else np.inf
    return heap.D, heap.I


def search_index(
    index_folder: str | os.PathLike,
    q_emb: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    batch_size: int = 4096,
    shard_map: ShardMap | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Search an index folder (every shard, or its merged index) and merge the top-k exactly.

    Args:
        q_emb: [Q, D] queries (cast to float32).
        nprobe, ef_search: override the values recorded at build time (IndexConfig).
        batch_size: queries per faiss call. It bounds the result buffers; keep it large, as
            small calls cost OpenMP start-up and BLAS efficiency (faiss blocks internally).
        shard_map: runs `search_shard` over the index files and yields their results in file
            order (default: one after another here; `lead_ray.distributed.index` runs them as
            Ray tasks). The merge is the same, so ties resolve the same way.
    Returns:
        scores [Q, k] float32 and doc_idx [Q, k] int64, best first.
    """
    manifest = read_index_manifest(index_folder)
    q = as_queries(q_emb, manifest["dim"])
    settings = {
        "nprobe": manifest.get("nprobe") if nprobe is None else nprobe,
        "ef_search": manifest.get("ef_search") if ef_search is None else ef_search,
        "batch_size": batch_size,
    }
    parts = (shard_map or search_here)(q, k, index_paths(index_folder, manifest), settings)
    return merge_results(parts, len(q), k, manifest["metric"])


def search_here(q: np.ndarray, k: int, paths: list[tuple[Path, bool]], settings: dict[str, Any]):
    """`search_shard` on each `(path, on_disk)` in this process, lazily (one index in memory)."""
    return (search_shard(path, q, k, on_disk=on_disk, **settings) for path, on_disk in paths)


def exact_search(
    emb_folder: str | os.PathLike, q_emb: np.ndarray, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k over the embedding shards (no index), one shard in memory at a time."""
    q = np.ascontiguousarray(q_emb, dtype=np.float32)  # [Q, D]

    def parts():
        for _, path in iter_shards(emb_folder):
            doc_idx, emb = read_vectors(path)  # [N], [N, D]
            if emb.shape[1] != q.shape[1]:
                raise ValueError(f"queries have dim {q.shape[1]}, {path} has {emb.shape[1]}")
            if len(emb) == 0:
                continue
            scores, local = faiss.knn(q, emb, min(k, len(emb)), metric=METRICS[metric])
            yield scores, np.where(local >= 0, doc_idx[local.clip(0)], -1)

    return merge_results(parts(), len(q), k, metric)


def ann_recall(ann_idx: np.ndarray, exact_idx: np.ndarray, k: int) -> float:
    """Mean over queries of |ANN top-k ∩ exact top-k| / |exact top-k| (-1 slots ignored)."""
    ann_idx, exact_idx = np.asarray(ann_idx)[:, :k], np.asarray(exact_idx)[:, :k]
    if len(ann_idx) != len(exact_idx):
        raise ValueError(f"{len(ann_idx)} ANN rows vs {len(exact_idx)} exact rows")
    recalls = []
    for ann, exact in zip(ann_idx, exact_idx, strict=True):
        exact = exact[exact >= 0]
        if len(exact):
            recalls.append(np.isin(exact, ann[ann >= 0]).sum() / len(exact))
    if not recalls:
        raise ValueError("no query has an exact result")
    return float(np.mean(recalls))
