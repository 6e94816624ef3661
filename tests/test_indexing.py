"""Indexing: one trained quantizer shared by every shard, global ids, reruns, merging."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from faiss.contrib.datasets import SyntheticDataset

from lead_ray.config import ConfigError, IndexConfig
from lead_ray.corpus.embeddings import finalize, write_shard
from lead_ray.corpus.index import build_index, build_shard_index, make_index, train_index
from lead_ray.corpus.search import ann_recall, exact_search, search_index
from lead_ray.storage import read_manifest

BOUNDS = [0, 700, 713, 1900, 3000]  # uneven shards, one tiny


def _write(folder, x, bounds=BOUNDS):
    entries = [
        write_shard(folder, s, np.arange(lo, hi), [f"d{i}" for i in range(lo, hi)], x[lo:hi])
        for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    finalize(folder, entries)


@pytest.fixture(scope="module")
def data():
    ds = SyntheticDataset(32, 3000, 3000, 40, metric="IP", seed=123)
    return ds.get_database(), ds.get_queries()  # [N, D], [Q, D]


@pytest.fixture
def emb_dir(tmp_path, data):
    _write(tmp_path / "emb", data[0])
    return tmp_path / "emb"


def test_train_index_trains_once_and_stays_empty(data):
    xb, _ = data
    trained = train_index("IVF16,PQ8x4", xb[:2000])
    assert trained.is_trained and trained.ntotal == 0
    flat = train_index("Flat", xb[:10])
    assert flat.is_trained and flat.ntotal == 0


def test_bad_factory_is_a_config_error():
    with pytest.raises(ConfigError, match="index.factory: 'IVF,Nope'"):
        make_index("IVF,Nope", 32)


def test_shard_index_uses_global_ids(tmp_path, data):
    xb, _ = data
    write_shard(tmp_path, 0, np.arange(500, 600), ["x"] * 100, xb[500:600])
    for factory in ("Flat", "HNSW8"):
        entry = build_shard_index(
            factory, tmp_path / "shard-00000.parquet", tmp_path / f"{factory}.index"
        )
        assert entry["rows"] == 100
        index = faiss.read_index(str(tmp_path / f"{factory}.index"))
        _, ids = index.search(xb[[510, 599]], 1)
        assert ids[:, 0].tolist() == [510, 599]
    with pytest.raises(ValueError, match="needs training"):
        build_shard_index("IVF4,Flat", tmp_path / "shard-00000.parquet", tmp_path / "x.index")


def test_build_writes_manifest_and_skips_complete_shards_on_rerun(tmp_path, emb_dir, data):
    xb, xq = data
    out = tmp_path / "index"
    cfg = IndexConfig(factory="Flat")
    manifest = build_index(emb_dir, out, cfg)
    assert manifest["complete"] and manifest["factory"] == "Flat" and manifest["metric"] == "ip"
    assert manifest["rows"] == 3000 and manifest["dim"] == 32
    assert [e["rows"] for e in manifest["shards"]] == [700, 13, 1187, 1100]
    assert {k: manifest["last_run"][k] for k in ("built", "skipped")} == {
        "built": [0, 1, 2, 3],
        "skipped": [],
    }
    assert manifest["trained"] is None and not (out / "trained.index").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.index")}

    again = build_index(emb_dir, out, cfg)
    assert {k: again["last_run"][k] for k in ("built", "skipped")} == {
        "built": [],
        "skipped": [0, 1, 2, 3],
    }
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.index")} == stamps

    # a corrupt shard index (bad checksum) and a missing one are rebuilt, nothing else
    path = out / "shard-00002.index"
    data_bytes = bytearray(path.read_bytes())
    data_bytes[-5] ^= 0xFF
    path.write_bytes(bytes(data_bytes))
    (out / "shard-00000.index").unlink()
    third = build_index(emb_dir, out, cfg)
    assert {k: third["last_run"][k] for k in ("built", "skipped")} == {
        "built": [0, 2],
        "skipped": [1, 3],
    }
    assert (out / "shard-00001.index").stat().st_mtime_ns == stamps["shard-00001.index"]
    scores, ids = search_index(out, xq, 10)
    exact_scores, exact_ids = exact_search(emb_dir, xq, 10)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)


def test_changed_factory_rebuilds_everything(tmp_path, emb_dir):
    out = tmp_path / "index"
    build_index(emb_dir, out, IndexConfig(factory="Flat"))
    manifest = build_index(emb_dir, out, IndexConfig(factory="IVF8,Flat", train_sample=1000))
    assert manifest["last_run"]["built"] == [0, 1, 2, 3]
    assert manifest["trained"]["file"] == "trained.index"
    assert read_manifest(out)["factory"] == "IVF8,Flat"


def test_interrupted_build_keeps_its_trained_quantizer(tmp_path, emb_dir):
    out = tmp_path / "index"
    cfg = IndexConfig(factory="IVF8,PQ4x4", train_sample=1500)
    first = build_index(emb_dir, out, cfg)
    trained_sha = first["trained"]["sha256"]
    (out / "shard-00003.index").unlink()  # as if the run died before the last shard
    second = build_index(emb_dir, out, cfg)
    assert second["last_run"]["built"] == [3]
    assert second["trained"]["sha256"] == trained_sha  # not retrained: old shards stay compatible


def _assert_same_topk(scores, ids, ref_scores, ref_ids):
    """Equal ids wherever the reference scores are distinct; equal scores everywhere."""
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    for row in range(len(ids)):
        values, counts = np.unique(ref_scores[row], return_counts=True)
        tied = np.isin(ref_scores[row], values[counts > 1]) | (
            ref_scores[row] == ref_scores[row][-1]
        )
        np.testing.assert_array_equal(ids[row][~tied], ref_ids[row][~tied])


@pytest.mark.parametrize(("factory", "floor"), [("IVF16,PQ8x4", 0.4), ("OPQ4,IVF16,Flat", 0.85)])
def test_ivf_shards_from_one_quantizer_equal_one_index(tmp_path, emb_dir, data, factory, floor):
    xb, xq = data
    out_shards, out_merged = tmp_path / "shards", tmp_path / "merged"
    cfg = IndexConfig(factory=factory, train_sample=1000, nprobe=4)
    build_index(emb_dir, out_shards, cfg)
    merged = build_index(emb_dir, out_merged, cfg.model_copy(update={"merge": True}))
    assert merged["merged"]["ivfdata"] == "merged.ivfdata"
    assert (out_merged / "merged.index").is_file() and (out_merged / "merged.ivfdata").is_file()
    # the same trained quantizer (same sample, same seed) in both folders
    assert merged["trained"]["sha256"] == read_manifest(out_shards)["trained"]["sha256"]

    single = faiss.read_index(str(out_shards / "trained.index"))
    single.add_with_ids(xb, np.arange(len(xb)))
    faiss.ParameterSpace().set_index_parameter(single, "nprobe", 4)
    ref_scores, ref_ids = single.search(xq, 20)

    for folder in (out_shards, out_merged):
        scores, ids = search_index(folder, xq, 20, batch_size=9)
        _assert_same_topk(scores, ids, ref_scores, ref_ids)

    # recall floor against exact search (nprobe 4 of 16 lists on clustered synthetic data;
    # measured 0.53 for PQ8x4 codes and 0.92 for uncompressed vectors)
    _, exact_ids = exact_search(emb_dir, xq, 10)
    _, ann_ids = search_index(out_merged, xq, 10)
    assert ann_recall(ann_ids, exact_ids, 10) >= floor
    # probing every list of an uncompressed IVF is exact
    if factory.endswith(",Flat"):
        _, all_lists = search_index(out_merged, xq, 10, nprobe=16)
        np.testing.assert_array_equal(all_lists, exact_ids)

    # a rerun keeps the merged index
    rerun = build_index(emb_dir, out_merged, cfg.model_copy(update={"merge": True}))
    assert rerun["last_run"]["built"] == [] and rerun["merged"] == merged["merged"]


def test_flat_merge_equals_flat(tmp_path, emb_dir, data):
    xb, xq = data
    manifest = build_index(emb_dir, tmp_path / "ix", IndexConfig(factory="Flat", merge=True))
    assert manifest["merged"]["ivfdata"] is None
    ref = faiss.IndexFlatIP(xb.shape[1])
    ref.add(xb)
    ref_scores, ref_ids = ref.search(xq, 15)
    scores, ids = search_index(tmp_path / "ix", xq, 15)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


def test_unsupported_merge_and_missing_gpu_are_config_errors(tmp_path, emb_dir):
    with pytest.raises(ConfigError, match="index.merge: 'HNSW8' shards cannot be merged"):
        build_index(emb_dir, tmp_path / "a", IndexConfig(factory="HNSW8", merge=True))
    if faiss.get_num_gpus() == 0:
        with pytest.raises(ConfigError, match="install the `gpu` extra"):
            build_index(emb_dir, tmp_path / "b", IndexConfig(factory="Flat", gpu=True))
    assert not (tmp_path / "a" / "manifest.json").exists()


def test_float16_embeddings_index_as_their_float32_values(tmp_path, data):
    xb, xq = data
    half = xb.astype(np.float16)
    _write(tmp_path / "emb16", half)
    build_index(tmp_path / "emb16", tmp_path / "ix", IndexConfig(factory="Flat"))
    ref = faiss.IndexFlatIP(xb.shape[1])
    ref.add(half.astype(np.float32))
    ref_scores, ref_ids = ref.search(xq, 10)
    scores, ids = search_index(tmp_path / "ix", xq, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
