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
    index_folder: str | os.PathLike, q_emb: np.ndarray, k: int, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`search.search_index` (same arguments) with the index files searched in parallel Ray
    tasks; returns exactly what `search.search_index` returns."""
    return search.search_index(index_folder, q_emb, k, shard_map=ray_shard_map, **kwargs)


def ray_shard_map(
    q: np.ndarray,
    k: int,
    paths: list[tuple[Path, bool]],
    settings: dict[str, Any],
    num_cpus: float = 0.5,
):
    """`search.search_shard` on every index file as a Ray task (the queries put once); results
    in file order."""
    import ray

    q_ref = ray.put(q)
    task = ray.remote(num_cpus=num_cpus)(search.search_shard)
    refs = [
        task.remote(Path(path), q_ref, k, on_disk=on_disk, **settings) for path, on_disk in paths
    ]
    return (ray.get(ref) for ref in refs)
