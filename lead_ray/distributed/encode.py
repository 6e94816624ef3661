"""Ray Data encoding: corpus store -> `CorpusEncoder` actors -> embedding shards on the driver.

    read_datasource(StoreRanges)          one read task per unfinished shard, pinned to the
                                          driver's node, zero CPUs, at most READ_TASKS at a
                                          time, blocks of one encoder call
      -> map_batches(CorpusEncoder, compute=ActorPoolStrategy(size=encode.actors),
                     num_cpus=encode.cpus_per_actor, num_gpus=encode.num_gpus, batch_size=...)
      -> iter_batches on the driver -> ShardWriter: each shard is written atomically as soon
                                          as all its rows arrived; the manifest after each one

Why the store and not `ray.data.read_json/read_csv/read_parquet` on the source file: the FAISS
id `doc_idx` must be the global row number, the same in every run and in the local loop.
Ray's file readers neither number rows globally nor keep an order, so a rerun could not tell
which shards are finished. The store (`lead_ray/data/store.py`) is built once, streaming, as a
memory-mapped Arrow IPC file; a read task slices its rows zero-copy, so no process holds the
corpus, and a rerun reads only the unfinished shards. Read tasks run on the driver's node (the
datasource declares no distributed reads), the one that built the store, and reserve no CPU, so
they schedule on a head with `CPU: 0` (cluster/aws.yaml) and never starve the actors (reads at
1 CPU next to two 1-CPU actors deadlock 2 cores). On a cluster (`ray.address` set) the model
folder travels through the object store and actors unpack it into a temporary folder, so GPU
nodes need no shared filesystem; on one machine actors read it in place. Ray is started here
(`ray.address`) unless the caller initialised it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lead_ray.config import Config
from lead_ray.corpus.encode import CALL_BATCHES, CorpusEncoder, check_dual_encoder
from lead_ray.corpus.shard_writer import ShardWriter, plan_encoding
from lead_ray.data.store import CORPUS_FILE, CorpusStore
from lead_ray.distributed.session import require_resources, start_ray
from lead_ray.models.backbone import resolve_model_path

log = logging.getLogger(__name__)

# Zero-CPU reads are not limited by CPUs, so cap them: each running one is a worker process
# (~100 MiB), and one slices ~10^5 rows/s, more than a few GPU actors encode.
READ_TASKS = 4


def _store_datasource(folder: str, ranges: list[tuple[int, int]], block_rows: int):
    """A Ray Datasource over row ranges of the memory-mapped store (one read task per range, run
    on the driver's node)."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read(lo: int, hi: int):
        table = pa.ipc.open_file(pa.memory_map(str(Path(folder) / CORPUS_FILE))).read_all()
        for start in range(lo, hi, block_rows):  # zero-copy slices; Ray copies each block out
            yield table.slice(start, min(block_rows, hi - start))

    class StoreRanges(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
            return [
                ReadTask(
                    lambda lo=lo, hi=hi: read(lo, hi),
                    BlockMetadata(
                        num_rows=hi - lo, size_bytes=None, input_files=None, exec_stats=None
                    ),
                )
                for lo, hi in ranges
            ]

        def get_name(self) -> str:
            return "CorpusStore"

        @property
        def supports_distributed_reads(self) -> bool:
            return False  # Ray pins the read tasks to the driver's node, where the store is

    return StoreRanges()


class _ShippedEncoder:
    """`CorpusEncoder` whose model folder arrives through the object store (no shared disk)."""

    def __init__(self, files: list, **kwargs: Any):
        import ray

        folder = tempfile.mkdtemp(prefix="lead-encoder-")
        weakref.finalize(self, shutil.rmtree, folder, True)
        for rel, data in ray.get(files[0]).items():
            (Path(folder) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / rel).write_bytes(data)
        self.encoder = CorpusEncoder(folder, **kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.encoder(batch)


def _pack_folder(folder: str) -> dict[str, bytes]:
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_encoding(
    cfg: Config,
    model_folder: str | os.PathLike,
    store_folder: str | os.PathLike,
    out_folder: str | os.PathLike,
    progress: bool = True,
    on_shard: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Encode the store's unfinished shards with a Ray Data actor pool; returns the manifest
    (its `last_run` says which shards this call encoded).

    Args:
        store_folder: a built `CorpusStore` folder on this (the driver's) node.
        on_shard: called as `on_shard(shard, entry)` after each shard and its manifest update.
    """
    import ray

    from lead_ray.progress import bar

    model_folder = resolve_model_path(str(model_folder))
    check_dual_encoder(model_folder)
    store = CorpusStore.open(store_folder)
    plan = plan_encoding(cfg, model_folder, store, out_folder)
    if plan.manifest is not None:
        return plan.nothing_to_do("ray")
    writer = ShardWriter(plan, on_shard=on_shard)
    todo, enc = plan.todo, cfg.encode
    t0, docs, total = time.perf_counter(), 0, sum(plan.shard_size(s) for s in todo)
    if todo:
        start_ray(cfg)
        for kind, need in (
            ("CPU", enc.actors * enc.cpus_per_actor),
            ("GPU", enc.actors * enc.num_gpus),
        ):
            require_resources(
                cfg,
                kind,
                need,
                f"encode.actors={enc.actors} (x cpus_per_actor"
                f"={enc.cpus_per_actor:g}, num_gpus={enc.num_gpus:g})",
            )
        ray.data.DataContext.get_current().enable_progress_bars = False
        call_rows = enc.batch_size * CALL_BATCHES
        ds = ray.data.read_datasource(
            _store_datasource(
                str(Path(store_folder).resolve()), [plan.bounds(s) for s in todo], call_rows
            ),
            num_cpus=0,
            concurrency=min(len(todo), READ_TASKS),
        )
        threads = enc.threads or max(1, int(enc.cpus_per_actor))
        kwargs = dict(
            max_length=enc.max_length,
            batch_size=enc.batch_size,
            dtype=enc.dtype,
            title=cfg.data.title,
            doc_mode=enc.doc_mode,
            maxp_stride=enc.maxp_stride,
            maxp_passages=enc.maxp_passages,
            threads=threads,
            device="cuda" if enc.num_gpus > 0 else "cpu",
        )
        if cfg.ray.address is None:  # one machine: actors read the model folder in place
            udf, kwargs = CorpusEncoder, {"model_path": model_folder, **kwargs}
        else:  # a cluster: GPU nodes may not see the driver's disk
            udf, kwargs = (
                _ShippedEncoder,
                {"files": [ray.put(_pack_folder(model_folder))], **kwargs},
            )
        ds = ds.map_batches(
            udf,
            fn_constructor_kwargs=kwargs,
            compute=ray.data.ActorPoolStrategy(size=enc.actors),
            batch_size=call_rows,
            batch_format="numpy",
            num_cpus=enc.cpus_per_actor,
            num_gpus=enc.num_gpus or None,
        )
        with bar("encode (ray)", total, progress) as pbar:
            task = pbar.add_task("encode", total=total, rate="", info=f"{len(todo)} shards")
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                writer.add(batch)
                docs += (
                    int((batch["passage"] == 0).sum())
                    if "passage" in batch
                    else len(batch["doc_idx"])
                )
                rate = docs / max(time.perf_counter() - t0, 1e-9)
                pbar.update(task, completed=docs, rate=f"{rate:,.0f} docs/s")
    seconds = time.perf_counter() - t0
    return writer.finish(
        backend="ray",
        actors=enc.actors,
        seconds=round(seconds, 3),
        docs=docs,
        docs_per_s=round(docs / seconds, 2) if docs else None,
    )
