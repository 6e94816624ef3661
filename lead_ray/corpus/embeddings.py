"""Embedding shards on disk: Parquet files `shard-00000.parquet`, ... plus `manifest.json`.

Each shard has the columns `doc_idx` (int64, the global row number and FAISS id), `doc_id`
(string, the user's id) and `emb` (fixed_size_list<float32 | float16>[D]). Shards are written
atomically and checksummed; the manifest, written last by `finalize`, says which are complete.
This module knows nothing about models or indexes; vectors come back as float32 for FAISS.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lead_ray.data.errors import DataError
from lead_ray.storage import atomic_write_bytes, read_manifest, sha256_file, write_manifest

KIND = "embeddings"
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}


def shard_file(shard: int) -> str:
    return f"shard-{shard:05d}.parquet"


def write_shard(
    folder: str | os.PathLike,
    shard: int,
    doc_idx: np.ndarray,
    doc_ids: Sequence[str],
    emb: np.ndarray,
) -> dict[str, Any]:
    """Write one shard atomically and return its manifest entry.

    Args:
        doc_idx: [N] int64 global row numbers.
        doc_ids: N user ids.
        emb: [N, D] float32 or float16 (kept as given; float16 halves the disk size).
    Returns:
        `{"shard", "file", "rows", "doc_idx_start", "sha256"}` for `finalize`.
    """
    doc_idx = np.asarray(doc_idx)
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.dtype.name not in DTYPES:
        raise ValueError(f"emb must be [N, D] float32 or float16, got {emb.shape} {emb.dtype}")
    if not np.issubdtype(doc_idx.dtype, np.integer) or doc_idx.shape != (len(emb),):
        raise ValueError(f"doc_idx must be [N] integers with N={len(emb)}, got {doc_idx.shape}")
    if len(doc_ids) != len(emb):
        raise ValueError(f"{len(doc_ids)} doc_ids for {len(emb)} vectors")
    dim = emb.shape[1]
    values = pa.array(np.ascontiguousarray(emb).reshape(-1), type=DTYPES[emb.dtype.name])
    table = pa.table(
        {
            "doc_idx": pa.array(doc_idx.astype(np.int64), pa.int64()),
            "doc_id": pa.array(list(doc_ids), pa.string()),
            "emb": pa.FixedSizeListArray.from_arrays(values, dim),
        }
    )
    sink = pa.BufferOutputStream()
    # vectors hardly compress; ids do
    pq.write_table(table, sink, compression={"doc_idx": "zstd", "doc_id": "zstd", "emb": "none"})
    data = sink.getvalue()
    name = shard_file(shard)
    atomic_write_bytes(Path(folder) / name, data)
    return {
        "shard": int(shard),
        "file": name,
        "rows": len(emb),
        "doc_idx_start": int(doc_idx.min()) if len(doc_idx) else 0,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _emb_column(table: pa.Table, path: object) -> np.ndarray:
    col = table.column("emb")
    kind = col.type
    if not pa.types.is_fixed_size_list(kind) or kind.value_type not in DTYPES.values():
        raise DataError(path, f"expected fixed_size_list<float32|float16>, got {kind}", field="emb")
    arr = col.combine_chunks()
    flat = arr.flatten()  # respects slicing, unlike .values
    if arr.null_count or flat.null_count:
        raise DataError(path, "null vectors or values", field="emb")
    emb = flat.to_numpy(zero_copy_only=False).reshape(len(arr), kind.list_size)  # [N, D]
    return np.ascontiguousarray(emb, dtype=np.float32)


def _read_table(path: str | os.PathLike, columns: list[str]) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DataError(path, "embedding shard not found") from None
    except (pa.ArrowException, OSError, KeyError) as err:  # corrupt footer, missing column
        raise DataError(
            path, f"not a readable embedding shard ({str(err).splitlines()[0]})"
        ) from None
    if "doc_idx" in columns and not pa.types.is_integer(table.column("doc_idx").type):
        raise DataError(
            path, f"expected int64, got {table.column('doc_idx').type}", field="doc_idx"
        )
    return table


def read_vectors(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """`(doc_idx [N] int64, emb [N, D] float32)` of one shard, without the string ids."""
    table = _read_table(path, ["doc_idx", "emb"])
    return table.column("doc_idx").to_numpy().astype(np.int64), _emb_column(table, path)


def read_shard(path: str | os.PathLike) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`(doc_idx [N] int64, doc_ids, emb [N, D] float32)` of one shard (float16 is widened)."""
    table = _read_table(path, ["doc_idx", "doc_id", "emb"])
    return (
        table.column("doc_idx").to_numpy().astype(np.int64),
        table.column("doc_id").to_pylist(),
        _emb_column(table, path),
    )


def read_embeddings_manifest(folder: str | os.PathLike, require_complete: bool = True) -> dict:
    """The folder's embeddings manifest; DataError when missing, of another kind, or incomplete."""
    manifest = read_manifest(folder)
    where = Path(folder) / "manifest.json"
    if manifest is None:
        raise DataError(where, "no manifest: not an embeddings folder, or encoding never finished")
    if manifest.get("kind") != KIND:
        raise DataError(where, f"expected {KIND!r}, got {manifest.get('kind')!r}", field="kind")
    if require_complete and not manifest.get("complete"):
        raise DataError(where, "encoding is not complete (rerun it to finish)", field="complete")
    return manifest


def iter_shards(
    folder: str | os.PathLike, require_complete: bool = True
) -> Iterator[tuple[dict[str, Any], Path]]:
    """Yield `(manifest entry, shard path)` in shard order."""
    manifest = read_embeddings_manifest(folder, require_complete)
    for entry in sorted(manifest["shards"], key=lambda e: e["shard"]):
        yield entry, Path(folder) / entry["file"]


def complete_shards(folder: str | os.PathLike) -> set[int]:
    """Shards listed in the manifest whose file exists with the listed row count and checksum."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("kind") != KIND:
        return set()
    done = set()
    for entry in manifest.get("shards", []):
        path = Path(folder) / entry["file"]
        if not path.is_file():
            continue
        # the checksum first: a file that matches it is the one written, so its footer parses
        if (
            sha256_file(path) == entry["sha256"]
            and pq.ParquetFile(path).metadata.num_rows == entry["rows"]
        ):
            done.add(int(entry["shard"]))
    return done


def finalize(folder: str | os.PathLike, entries: Sequence[dict[str, Any]], **meta: Any) -> dict:
    """Write the manifest (last). `complete` defaults to True; pass False to record progress.

    Args:
        entries: what `write_shard` returned, one per shard.
        meta: `dim`, `dtype`, `shard_rows`, `model`, ... (dim and dtype are read from the first
            shard when not given).
    """
    entries = sorted(entries, key=lambda e: e["shard"])
    if len({e["shard"] for e in entries}) != len(entries):
        raise ValueError("duplicate shard numbers in the entries")
    complete = meta.pop("complete", True)
    if entries and ("dim" not in meta or "dtype" not in meta):
        kind = pq.read_schema(Path(folder) / entries[0]["file"]).field("emb").type
        meta.setdefault("dim", kind.list_size)
        meta.setdefault("dtype", "float16" if kind.value_type == pa.float16() else "float32")
    manifest = {
        "kind": KIND,
        "complete": bool(complete),
        "dim": meta.pop("dim", None),
        "dtype": meta.pop("dtype", None),
        "rows": sum(e["rows"] for e in entries),
        "shard_rows": meta.pop("shard_rows", max((e["rows"] for e in entries), default=0)),
        "model": meta.pop("model", None),
        **meta,
        "shards": list(entries),
    }
    write_manifest(folder, manifest)
    return manifest
