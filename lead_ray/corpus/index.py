"""FAISS indexes over embedding shards: train once on a sample, one index per shard, manifest.

An index folder holds `trained.index` (only for factories that need training), one
`shard-00000.index` per embedding shard (FAISS ids = global doc_idx), optionally `merged.index`
(+ `merged.ivfdata` for an on-disk IVF merge) and `manifest.json`, written last. Every shard is
built from the same trained index, so shards can be searched apart and merged exactly, or merged
into one index. No Ray here: `lead_ray.distributed.index` fans `build_shard_index` out.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lead_ray.config import ConfigError, IndexConfig
from lead_ray.corpus.embeddings import iter_shards, read_embeddings_manifest, read_vectors
from lead_ray.data.errors import DataError
from lead_ray.storage import (
    atomic_file,
    read_manifest,
    remove_stale_temps,
    sha256_file,
    write_manifest,
)

log = logging.getLogger(__name__)

KIND = "index"
TRAINED, MERGED, IVFDATA = "trained.index", "merged.index", "merged.ivfdata"
METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
SAMPLE_SEED = 0  # the training sample is a fixed function of the embeddings


def index_file(shard: int) -> str:
    return f"shard-{shard:05d}.index"


def make_index(factory: str, dim: int, metric: str = "ip") -> faiss.Index:
    """An empty index from a faiss `index_factory` string; ConfigError when it does not parse."""
    try:
        return faiss.index_factory(dim, factory, METRICS[metric])
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise ConfigError(
            f"index.factory: {factory!r} is not a usable faiss factory ({reason})"
        ) from None


def needs_id_map(index: faiss.Index) -> bool:
    """Flat, HNSW, SQ and refine indexes cannot `add_with_ids`; IVF (maybe OPQ-wrapped) can."""
    return faiss.try_extract_index_ivf(index) is None or isinstance(index, faiss.IndexRefine)


def merge_kind(index: faiss.Index) -> str | None:
    """How shard indexes of this type merge: "ivf" (on disk), "flat" (in memory) or None."""
    if not needs_id_map(index):
        return "ivf"
    return "flat" if isinstance(index, faiss.IndexFlat) else None


def require_gpu() -> None:
    """ConfigError unless this faiss build sees a GPU (faiss-cpu always reports 0)."""
    if faiss.get_num_gpus() == 0:
        raise ConfigError(
            "index.gpu is true, but the installed faiss sees no GPU: install the `gpu` "
            "extra (pip install 'lead-ray[gpu]', after removing faiss-cpu) on a CUDA "
            "machine, or set index.gpu=false"
        )


def _gpu_index(index: faiss.Index) -> faiss.Index | None:
    """A copy of `index` on every GPU, or None when faiss cannot place this index type there."""
    require_gpu()
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as err:  # e.g. HNSW has no GPU version
        log.warning("faiss cannot put %s on the GPU (%s); using the CPU", type(index).__name__, err)
        return None


def train_index(
    factory: str, sample: np.ndarray, metric: str = "ip", *, gpu: bool = False
) -> faiss.Index:
    """A trained, empty index; every shard starts from a copy of it.

    Args:
        sample: [S, D] training vectors (a sample across all shards).
    """
    sample = np.ascontiguousarray(sample, dtype=np.float32)  # [S, D]
    index = make_index(factory, sample.shape[1], metric)
    if index.is_trained:
        return index
    t = time.perf_counter()
    on_gpu = _gpu_index(index) if gpu else None
    if on_gpu is not None:
        on_gpu.train(sample)
        index = faiss.index_gpu_to_cpu(on_gpu)
    else:
        index.train(sample)
    log.info("trained %s on %d vectors in %.1f s", factory, len(sample), time.perf_counter() - t)
    return index


def write_index(index: faiss.Index, path: str | os.PathLike) -> str:
    """Write atomically (temp + fsync + rename); returns the file's sha256."""
    with atomic_file(path, "wb") as fh:
        faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
    return sha256_file(path)


def build_shard_index(
    trained_or_factory: faiss.Index | Path | str,
    emb_shard_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    metric: str = "ip",
    gpu: bool = False,
) -> dict[str, Any]:
    """Add one embedding shard (ids = its doc_idx) to a copy of the trained index and write it.

    Args:
        trained_or_factory: a trained empty index, a `Path` to one (`trained.index`), or a
            factory string for index types that need no training (Flat, HNSW32).
    Returns:
        `{"file", "rows", "sha256"}`.
    """
    doc_idx, emb = read_vectors(emb_shard_path)  # [N], [N, D]
    if isinstance(trained_or_factory, faiss.Index):
        index = faiss.clone_index(trained_or_factory)
    elif isinstance(trained_or_factory, Path):
        index = faiss.read_index(str(trained_or_factory))
    else:
        index = make_index(trained_or_factory, emb.shape[1], metric)
        if not index.is_trained:
            raise ValueError(f"{trained_or_factory!r} needs training: pass the trained index")
    if index.d != emb.shape[1]:
        raise DataError(emb_shard_path, f"dim {emb.shape[1]} != index dim {index.d}", field="emb")
    if needs_id_map(index):
        index = faiss.IndexIDMap(index)
    # IVF adds (coarse assignment + encoding) gain from a GPU; IDMap-wrapped adds are copies
    on_gpu = _gpu_index(index) if gpu and not needs_id_map(index) else None
    (on_gpu or index).add_with_ids(emb, doc_idx)
    if on_gpu is not None:
        index = faiss.index_gpu_to_cpu(on_gpu)
    sha = write_index(index, out_path)
    return {"file": Path(out_path).name, "rows": int(index.ntotal), "sha256": sha}


def sample_vectors(emb_folder: str | os.PathLike, n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """[min(n, N), D] float32 rows drawn uniformly across the shards, one shard read at a time."""
    shards = list(iter_shards(emb_folder))
    total = sum(e["rows"] for e, _ in shards)
    pick = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    parts, start = [], 0
    for entry, path in shards:
        local = pick[(pick >= start) & (pick < start + entry["rows"])] - start
        if len(local):
            parts.append(read_vectors(path)[1][local])
        start += entry["rows"]
    return np.concatenate(parts)


@dataclass
class BuildPlan:
    """What one `build_index` run must do; `done` grows as shards finish."""

    emb_folder: Path
    index_folder: Path
    base: dict[str, Any]  # manifest fields: factory, metric, dim, trained, ...
    source: Path | str  # trained.index, or the factory string when no training is needed
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    todo: list[tuple[dict[str, Any], Path, Path]] = field(default_factory=list)  # entry, emb, out
    manifest: dict[str, Any] | None = None  # set when the folder is already complete as asked

    def nothing_to_do(self) -> dict[str, Any]:
        """The complete manifest as on disk, with `last_run` saying this call built nothing."""
        skipped = sorted(e["shard"] for e in self.manifest["shards"])
        return {**self.manifest, "last_run": {"built": [], "skipped": skipped, "seconds": 0.0}}


def _valid(folder: Path, entry: dict[str, Any] | None, key: str = "file") -> bool:
    """The file named by `entry[key]` exists with the checksum the manifest lists."""
    if not entry or not entry.get(key):
        return False
    sha = entry["sha256" if key == "file" else f"{key}_sha256"]
    return (folder / entry[key]).is_file() and sha256_file(folder / entry[key]) == sha


def _quantizer(emb_folder: Path, index_folder: Path, cfg: IndexConfig, old: dict | None) -> dict:
    """Reuse `trained.index` when `old` (a compatible manifest) lists it intact, else train."""
    if old and _valid(index_folder, old.get("trained")):
        return old["trained"]
    sample = sample_vectors(emb_folder, cfg.train_sample)
    trained = train_index(cfg.factory, sample, cfg.metric, gpu=cfg.gpu)
    return {"file": TRAINED, "sha256": write_index(trained, index_folder / TRAINED)}


def prepare_build(
    emb_folder: str | os.PathLike, index_folder: str | os.PathLike, cfg: IndexConfig
) -> BuildPlan:
    """Read both manifests, train (or reuse) the quantizer, and list the shards still to build."""
    emb_folder, index_folder = Path(emb_folder).resolve(), Path(index_folder)
    remove_stale_temps(index_folder)  # what a killed build left (one builder per folder)
    if cfg.gpu:
        require_gpu()
    emb = read_embeddings_manifest(emb_folder)
    probe = make_index(cfg.factory, emb["dim"], cfg.metric)
    if cfg.merge and merge_kind(probe) is None:
        raise ConfigError(
            f"index.merge: {cfg.factory!r} shards cannot be merged (IVF and Flat can); "
            "set index.merge=false to search the shards"
        )
    train_sample = None if probe.is_trained else cfg.train_sample
    key = {
        "factory": cfg.factory,
        "metric": cfg.metric,
        "dim": emb["dim"],
        "train_sample": train_sample,
    }
    old = read_manifest(index_folder) or {}
    if old.get("kind") != KIND or any(old.get(k) != v for k, v in key.items()):
        old = {}  # another index type: nothing in the folder can be reused
    base = {
        "kind": KIND,
        **key,
        "rows": emb["rows"],
        "embeddings": str(emb_folder),
        "nprobe": cfg.nprobe,
        "ef_search": cfg.ef_search,
        "gpu": cfg.gpu,
        "trained": None,
    }
    source: Path | str = cfg.factory
    if not probe.is_trained:
        source = index_folder / TRAINED
        base["trained"] = _quantizer(emb_folder, index_folder, cfg, old)
        if base["trained"] != old.get("trained"):
            old = {}  # a new quantizer: old shards cannot be mixed with new ones
    plan = BuildPlan(emb_folder, index_folder, base, source)
    previous = {e["shard"]: e for e in old.get("shards", [])}
    for entry, path in iter_shards(emb_folder):
        prev = previous.get(entry["shard"])
        if prev and prev["embeddings_sha256"] == entry["sha256"] and _valid(index_folder, prev):
            plan.done[entry["shard"]] = prev
        else:
            skeleton = {"shard": entry["shard"], "embeddings_sha256": entry["sha256"]}
            plan.todo.append((skeleton, path, index_folder / index_file(entry["shard"])))
    merged = old.get("merged")
    if (
        cfg.merge
        and not plan.todo
        and _valid(index_folder, merged)
        and (merged["ivfdata"] is None or _valid(index_folder, merged, "ivfdata"))
    ):
        plan.base["merged"] = merged
    if (
        old.get("complete")
        and not plan.todo
        and old.get("config") == cfg.model_dump(mode="json")
        and all(old.get(k) == v for k, v in plan.base.items() if k != "merged")
        and bool(old.get("merged")) == bool(plan.base.get("merged"))
    ):
        plan.manifest = old  # nothing to do: the folder is left as it is
        return plan
    record_progress(plan)
    return plan


def record_progress(plan: BuildPlan, complete: bool = False, **extra: Any) -> dict[str, Any]:
    """Write the manifest with the shards finished so far (complete=False until the end)."""
    manifest = {
        **plan.base,
        "complete": complete,
        **extra,
        "shards": [plan.done[s] for s in sorted(plan.done)],
    }
    write_manifest(plan.index_folder, manifest)
    return manifest


def merge_shards(plan: BuildPlan) -> dict[str, Any]:
    """Merge every shard into `merged.index` (IVF: inverted lists on disk in `merged.ivfdata`)."""
    folder = plan.index_folder
    paths = [str(folder / plan.done[s]["file"]) for s in sorted(plan.done)]
    kind = merge_kind(make_index(plan.base["factory"], plan.base["dim"], plan.base["metric"]))
    if kind == "flat":
        merged = faiss.read_index(paths[0])
        for path in paths[1:]:
            merged.merge_from(faiss.read_index(path))
        return {"file": MERGED, "ivfdata": None, "sha256": write_index(merged, folder / MERGED)}
    from faiss.contrib.ondisk import merge_ondisk

    tmp = folder / f".merge.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        trained = faiss.read_index(str(plan.source))
        merge_ondisk(trained, paths, str(tmp / IVFDATA))
        faiss.write_index(trained, str(tmp / MERGED))
        del trained  # unmaps and flushes the on-disk lists
        for name in (IVFDATA, MERGED):  # the index last: it is what readers look for
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "file": MERGED,
        "ivfdata": IVFDATA,
        "sha256": sha256_file(folder / MERGED),
        "ivfdata_sha256": sha256_file(folder / IVFDATA),
    }


def finish_build(
    plan: BuildPlan, cfg: IndexConfig, built: list[int], seconds: float | None = None
) -> dict[str, Any]:
    """Merge when asked, then write the complete manifest (last); `seconds` is the build's wall
    time, kept in `last_run`."""
    if cfg.merge and (built or not plan.base.get("merged")):
        t = time.perf_counter()
        plan.base["merged"] = merge_shards(plan)
        log.info("merged %d shards in %.1f s", len(plan.done), time.perf_counter() - t)
    elif not cfg.merge:
        plan.base.pop("merged", None)
    skipped = sorted(set(plan.done) - set(built))
    return record_progress(
        plan,
        complete=True,
        last_run={"built": sorted(built), "skipped": skipped, "seconds": seconds},
        config=cfg.model_dump(mode="json"),
    )


def build_index(
    emb_folder: str | os.PathLike, index_folder: str | os.PathLike, cfg: IndexConfig
) -> dict[str, Any]:
    """Build (or finish) the sharded index of an embeddings folder; returns the manifest.

    Shards whose index file is listed with a matching checksum (and the same embeddings) are
    skipped; the manifest's `last_run` says which shards this call built.
    """
    t0 = time.perf_counter()
    plan = prepare_build(emb_folder, index_folder, cfg)
    if plan.manifest is not None:
        return plan.nothing_to_do()
    built = []
    for skeleton, emb_path, out_path in plan.todo:
        entry = build_shard_index(plan.source, emb_path, out_path, metric=cfg.metric, gpu=cfg.gpu)
        plan.done[skeleton["shard"]] = {**skeleton, **entry}
        built.append(skeleton["shard"])
        record_progress(plan)
    return finish_build(plan, cfg, built, seconds=time.perf_counter() - t0)
