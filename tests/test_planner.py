"""Planner: index sizes against real faiss files and the measured numbers, and the refusal."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from faiss.contrib.datasets import SyntheticDataset

from lead_ray.config import Config
from lead_ray.corpus.index import make_index, needs_id_map
from lead_ray.corpus.planner import (
    GiB,
    MiB,
    PlanError,
    check_plan,
    estimate_index_bytes,
    fmt_bytes,
    format_plan,
    make_plan,
    parse_factory,
    plan_from_config,
)

MSMARCO = 8_841_823


def test_sizes_measured_in_environment_md():
    # ENVIRONMENT.md section 6: 100k x 384, written without ids
    assert estimate_index_bytes("Flat", 100_000, 384, with_ids=False) / MiB == pytest.approx(
        146.5, abs=0.05
    )
    assert estimate_index_bytes("HNSW32", 100_000, 384, with_ids=False) / MiB == pytest.approx(
        172, rel=0.01
    )
    assert estimate_index_bytes("IVF1024,PQ48", 100_000, 384) / MiB == pytest.approx(7.2, rel=0.01)


def test_msmarco_sizes_from_anchors_md():
    # ANCHORS.md section 2.5, 8.84M x 768
    assert estimate_index_bytes("Flat", MSMARCO, 768, with_ids=False) / 1e9 == pytest.approx(
        27.2, rel=0.005
    )
    assert estimate_index_bytes("SQfp16", MSMARCO, 768, with_ids=False) / 1e9 == pytest.approx(
        13.6, rel=0.005
    )
    assert estimate_index_bytes("HNSW32,Flat", MSMARCO, 768) / 1e9 == pytest.approx(29.4, rel=0.02)
    assert estimate_index_bytes("HNSW32,SQ8", MSMARCO, 768) / 1e9 == pytest.approx(9.1, rel=0.02)
    assert estimate_index_bytes("OPQ96,IVF65536_HNSW32,PQ96", MSMARCO, 768) / 1e9 == pytest.approx(
        1.0, rel=0.2
    )


@pytest.mark.parametrize(
    "factory",
    [
        "Flat",
        "HNSW8",
        "HNSW8,SQ8",
        "SQ8",
        "SQfp16",
        "IVF32,Flat",
        "IVF32,SQ8",
        "IVF32,PQ8x4",
        "IVF32,PQ16x4fs",
        "OPQ4_32,IVF32,PQ8x4",
        "IVF32_HNSW8,PQ8x4",
        "IVF32,PQ8x4fs,RFlat",
    ],
)
def test_estimate_matches_the_written_shard_index(tmp_path, factory):
    ds = SyntheticDataset(64, 2000, 8000, 0, metric="IP", seed=5)
    index = make_index(factory, 64)
    if not index.is_trained:
        index.train(ds.get_train())
    if needs_id_map(index):  # as build_shard_index writes it
        index = faiss.IndexIDMap(index)
    index.add_with_ids(ds.get_database(), np.arange(8000))
    faiss.write_index(index, str(tmp_path / "x.index"))
    real = (tmp_path / "x.index").stat().st_size
    assert estimate_index_bytes(factory, 8000, 64) == pytest.approx(real, rel=0.03)


def test_parse_factory_and_its_errors():
    spec = parse_factory("OPQ16_64,IVF1024,PQ16x4fs,RFlat", 128)
    assert (spec.d_out, spec.ivf, spec.pq, spec.fast_scan, spec.refine_flat, spec.code_bytes) == (
        64,
        1024,
        (16, 4),
        True,
        True,
        8,
    )
    assert parse_factory("HNSW32", 384).code_bytes == 384 * 4
    assert not parse_factory("HNSW32", 384).trained and parse_factory("SQ8", 8).trained
    with pytest.raises(PlanError, match="cannot size 'LSH'"):
        parse_factory("LSH", 64)
    with pytest.raises(PlanError, match="PQ7 needs a dim divisible by 7, got 384"):
        parse_factory("IVF64,PQ7", 384)
    with pytest.raises(PlanError, match="no vector codec"):
        parse_factory("IVF64", 384)


def test_plan_numbers_follow_their_inputs():
    base = make_plan(1_000_000, 384, shard_rows=100_000, factory="IVF1024,PQ48")
    assert base.shards == 10
    assert base.embedding_bytes == 1_000_000 * (384 * 4 + 8 + 16)
    # ten shard files, each with its own copy of the trained quantizer; merged: one copy
    assert base.index_bytes == 10 * estimate_index_bytes("IVF1024,PQ48", 100_000, 384)
    assert base.merged_index_bytes == estimate_index_bytes("IVF1024,PQ48", 1_000_000, 384)
    uneven = make_plan(250_000, 384, shard_rows=100_000, factory="IVF1024,PQ48")
    assert uneven.index_bytes == 2 * estimate_index_bytes(
        "IVF1024,PQ48", 100_000, 384
    ) + estimate_index_bytes("IVF1024,PQ48", 50_000, 384)
    assert base.train_bytes > 0 and make_plan(1000, 384).train_bytes == 0  # Flat needs no training
    half = make_plan(1_000_000, 384, dtype="float16", shard_rows=50_000, factory="IVF1024,PQ48")
    assert half.embedding_bytes - 1_000_000 * 24 == (base.embedding_bytes - 1_000_000 * 24) // 2
    assert half.index_task_bytes < base.index_task_bytes
    assert half.shards == 20
    big_batch = make_plan(1_000_000, 384, batch_size=512, max_length=512)
    assert big_batch.encode_worker_bytes > make_plan(1_000_000, 384).encode_worker_bytes
    # an on-disk IVF merge holds only the quantizer; a Flat merge holds everything
    assert (
        make_plan(10**6, 384, factory="IVF1024,PQ48", merge=True).merge_bytes < 64 * MiB + 256 * MiB
    )
    assert make_plan(10**6, 384, factory="Flat", merge=True).merge_bytes > 10**6 * 384 * 4


def test_check_plan_refuses_and_names_the_number():
    plan = make_plan(
        MSMARCO, 768, factory="Flat", shard_rows=2_000_000, model_params=110_000_000, merge=True
    )
    check_plan(make_plan(10_000, 384, model_params=22_700_000), 4 * GiB)  # fits: no error
    with pytest.raises(PlanError) as err:
        check_plan(plan, 16 * GiB)
    message = str(err.value)
    assert message.startswith("plan for 8,841,823 x 768 float32, 'Flat' does not fit:")
    assert f"memory to merge the shard indexes is {fmt_bytes(plan.merge_bytes)}" in message
    assert f"merge_bytes={plan.merge_bytes}" in message and "above the limit of 16.0 GiB" in message
    assert "set index.merge=false" in message
    assert "peak memory per index task" not in message  # 2M-row Flat shards fit in 16 GiB
    with pytest.raises(
        PlanError, match=r"peak memory per index task is [\d.]+ GiB \(index_task_bytes="
    ):
        check_plan(plan, 4 * GiB)


def test_format_plan_and_config():
    cfg = Config.from_dict(
        {
            "data": {"synthetic": {}},
            "teacher": {"model": "@minilm"},
            "encode": {"shard_rows": 1000, "dtype": "float16", "batch_size": 32},
            "index": {"factory": "HNSW32"},
        }
    )
    plan = plan_from_config(cfg, rows=2500, dim=384, model_params=22_700_000)
    assert (plan.shards, plan.dtype, plan.factory, plan.shard_rows) == (
        3,
        "float16",
        "HNSW32",
        1000,
    )
    text = format_plan(plan)
    assert "2,500 x 384 float16, 3 shards of 1,000" in text
    assert f"index shard    {fmt_bytes(plan.index_shard_bytes)}" in text
