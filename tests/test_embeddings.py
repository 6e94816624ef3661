"""Embedding shards: round trip (float32 and float16), manifest, completeness checks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lead_ray.corpus.embeddings import (
    complete_shards,
    finalize,
    iter_shards,
    read_embeddings_manifest,
    read_shard,
    read_vectors,
    write_shard,
)
from lead_ray.data.errors import DataError


def _vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _write(folder, x, bounds, dtype="float32"):
    entries = []
    for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        entries.append(
            write_shard(
                folder,
                s,
                np.arange(lo, hi),
                [f"doc-{i}" for i in range(lo, hi)],
                x[lo:hi].astype(dtype),
            )
        )
    return finalize(folder, entries, model={"name": "test"})


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_keeps_ids_and_vectors(tmp_path, dtype):
    x = _vectors(37, 12)
    entry = write_shard(
        tmp_path, 3, np.arange(100, 137), [f"d{i}" for i in range(37)], x.astype(dtype)
    )
    assert entry["file"] == "shard-00003.parquet" and entry["rows"] == 37
    assert entry["doc_idx_start"] == 100
    schema = pq.read_schema(tmp_path / entry["file"])
    assert schema.field("emb").type == pa.list_(
        pa.float16() if dtype == "float16" else pa.float32(), 12
    )
    assert schema.field("doc_idx").type == pa.int64()
    doc_idx, doc_ids, emb = read_shard(tmp_path / entry["file"])
    np.testing.assert_array_equal(doc_idx, np.arange(100, 137))
    assert doc_ids == [f"d{i}" for i in range(37)]
    assert emb.dtype == np.float32 and emb.shape == (37, 12)
    np.testing.assert_array_equal(emb, x.astype(dtype).astype(np.float32))
    # no temporary files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00003.parquet"]


def test_float16_halves_the_vector_bytes(tmp_path):
    x = _vectors(2000, 64)
    e32 = write_shard(tmp_path / "a", 0, np.arange(2000), ["x"] * 2000, x)
    e16 = write_shard(tmp_path / "b", 0, np.arange(2000), ["x"] * 2000, x.astype(np.float16))
    size32 = (tmp_path / "a" / e32["file"]).stat().st_size
    size16 = (tmp_path / "b" / e16["file"]).stat().st_size
    assert size16 < 0.6 * size32


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="float32 or float16"):
        write_shard(tmp_path, 0, np.arange(3), ["a", "b", "c"], np.zeros((3, 4), np.float64))
    with pytest.raises(ValueError, match="doc_ids"):
        write_shard(tmp_path, 0, np.arange(3), ["a", "b"], np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="doc_idx"):
        write_shard(tmp_path, 0, np.arange(2), ["a", "b", "c"], np.zeros((3, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_finalize_writes_manifest_and_infers_dim(tmp_path):
    x = _vectors(50, 8)
    manifest = _write(tmp_path, x, [0, 20, 45, 50], dtype="float16")
    on_disk = read_embeddings_manifest(tmp_path)
    assert on_disk["kind"] == "embeddings" and on_disk["complete"] is True
    assert (on_disk["dim"], on_disk["dtype"], on_disk["rows"]) == (8, "float16", 50)
    assert on_disk["shard_rows"] == 25 and on_disk["model"] == {"name": "test"}
    assert [e["shard"] for e in on_disk["shards"]] == [0, 1, 2]
    assert manifest["shards"] == on_disk["shards"]
    assert [path.name for _, path in iter_shards(tmp_path)] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]


def test_incomplete_or_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="manifest.json: no manifest"):
        read_embeddings_manifest(tmp_path)
    entry = write_shard(tmp_path, 0, np.arange(3), ["a", "b", "c"], _vectors(3, 4))
    finalize(tmp_path, [entry], complete=False)
    with pytest.raises(DataError, match="complete: encoding is not complete"):
        list(iter_shards(tmp_path))
    assert read_embeddings_manifest(tmp_path, require_complete=False)["rows"] == 3


def test_complete_shards_detects_missing_corrupt_and_short_files(tmp_path):
    x = _vectors(40, 4)
    _write(tmp_path, x, [0, 10, 20, 30, 40])
    assert complete_shards(tmp_path) == {0, 1, 2, 3}
    (tmp_path / "shard-00001.parquet").unlink()  # missing
    data = bytearray((tmp_path / "shard-00002.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, bad checksum
    (tmp_path / "shard-00002.parquet").write_bytes(bytes(data))
    # a whole, valid file with other rows than listed (e.g. rewritten by another run)
    write_shard(tmp_path, 3, np.arange(30, 35), ["z"] * 5, x[30:35])
    assert complete_shards(tmp_path) == {0}
    assert complete_shards(tmp_path / "nothing-here") == set()


def test_unreadable_shard_names_the_file_and_field(tmp_path):
    bad = tmp_path / "shard-00000.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="shard-00000.parquet: not a readable embedding shard"):
        read_shard(bad)
    wrong = tmp_path / "shard-00001.parquet"
    pq.write_table(
        pa.table(
            {
                "doc_idx": pa.array([0, 1], pa.int64()),
                "doc_id": ["a", "b"],
                "emb": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64())),
            }
        ),
        wrong,
    )
    with pytest.raises(DataError, match=r"shard-00001.parquet: emb: expected fixed_size_list"):
        read_vectors(wrong)
    with pytest.raises(DataError, match="not found"):
        read_vectors(tmp_path / "missing.parquet")
