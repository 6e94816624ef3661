"""Ray fan-out of indexing and search: one task per embedding shard / index file.

The quantizer is trained once on the driver (`indexing.prepare_build`); each task runs
`indexing.build_shard_index` from that trained index, and the driver records every finished
shard in the manifest. Search runs `search.search_shard` per index file and merges the top-k on
the driver exactly like `search.search_index`. Every node must see the embedding and index
folders at the same paths (one machine, or a shared filesystem). The caller initialises Ray.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from lead_ray.config import Config, IndexConfig
from lead_ray.corpus import index as indexing
from lead_ray.corpus import search


def run_indexing(
    cfg: Config | IndexConfig,
    emb_folder: str | os.PathLike,
    index_folder: str | os.PathLike,
    *,
    num_cpus: float = 0.5,
) -> dict[str, Any]:
    """Build the sharded index with one Ray task per unfinished shard; returns the manifest.

    Args:
        num_cpus: per task; below 1 so tasks also schedule on a small local Ray.
    """
    import ray

    index_cfg = cfg.index if isinstance(cfg, Config) else cfg
    t0 = time.perf_counter()
    plan = indexing.prepare_build(emb_folder, index_folder, index_cfg)
    if plan.manifest is not None:
        return plan.nothing_to_do()
    task = ray.remote(num_cpus=num_cpus, num_gpus=1 if index_cfg.gpu else 0)(
        indexing.build_shard_index
    )
    pending = {
        task.remote(
            plan.source, emb_path, out_path, metric=index_cfg.metric, gpu=index_cfg.gpu
        ): skeleton
        for skeleton, emb_path, out_path in plan.todo
    }
    built = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            skeleton = pending.pop(ref)
            plan.done[skeleton["shard"]] = {**skeleton, **ray.get(ref)}
            built.append(skeleton["shard"])
            indexing.record_progress(plan)
    return indexing.finish_build(plan, index_cfg, built, seconds=time.perf_counter() - t0)


def run_search_parallel(
    index_folder: str | os.PathLike,
    q_emb: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    batch_size: int = 4096,
    num_cpus: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """`search.search_index` with the index files searched in parallel Ray tasks.

    Returns:
        scores [Q, k] float32 and doc_idx [Q, k] int64, equal to `search.search_index`'s.
    """
    import ray

    manifest = search.read_index_manifest(index_folder)
    q = search.as_queries(q_emb, manifest["dim"])  # [Q, D]
    nprobe = manifest.get("nprobe") if nprobe is None else nprobe
    ef_search = manifest.get("ef_search") if ef_search is None else ef_search
    q_ref = ray.put(q)
    task = ray.remote(num_cpus=num_cpus)(search.search_shard)
    refs = [
        task.remote(
            Path(path),
            q_ref,
            k,
            on_disk=on_disk,
            nprobe=nprobe,
            ef_search=ef_search,
            batch_size=batch_size,
        )
        for path, on_disk in search.index_paths(index_folder, manifest)
    ]
    # merged in shard order, as search_index does, so ties resolve the same way
    return search.merge_results((ray.get(ref) for ref in refs), len(q), k, manifest["metric"])
