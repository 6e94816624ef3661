"""Ray fan-out: shard indexes built in Ray tasks, searched in Ray tasks, equal one flat index."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from lead_ray.config import Config, IndexConfig
from lead_ray.corpus.embeddings import finalize, write_shard
from lead_ray.corpus.search import search_index
from lead_ray.distributed.index import run_indexing, run_search_parallel

pytestmark = pytest.mark.ray

D = 16
BOUNDS = [0, 400, 405, 1100, 1500]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((BOUNDS[-1], D)).astype(np.float32)
    folder = tmp_path_factory.mktemp("dist") / "emb"
    entries = [
        write_shard(folder, s, np.arange(lo, hi), [f"d{i}" for i in range(lo, hi)], xb[lo:hi])
        for s, (lo, hi) in enumerate(zip(BOUNDS[:-1], BOUNDS[1:], strict=True))
    ]
    finalize(folder, entries)
    return folder, xb, rng.standard_normal((23, D)).astype(np.float32)


def test_ray_built_shards_equal_one_flat_index(ray_local, tmp_path, corpus):
    folder, xb, xq = corpus
    cfg = Config.from_dict(
        {"data": {"synthetic": {}}, "teacher": {"model": "@minilm"}, "index": {"factory": "Flat"}}
    )
    manifest = run_indexing(cfg, folder, tmp_path / "ix")
    assert manifest["complete"] and manifest["last_run"]["built"] == [0, 1, 2, 3]
    assert [e["rows"] for e in manifest["shards"]] == [400, 5, 695, 400]

    ref = faiss.IndexFlatIP(D)
    ref.add(xb)
    ref_scores, ref_ids = ref.search(xq, 30)  # k larger than shard 1
    for scores, ids in (
        run_search_parallel(tmp_path / "ix", xq, 30, batch_size=5),
        search_index(tmp_path / "ix", xq, 30),
    ):
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)

    rerun = run_indexing(cfg, folder, tmp_path / "ix")
    assert {k: rerun["last_run"][k] for k in ("built", "skipped")} == {
        "built": [],
        "skipped": [0, 1, 2, 3],
    }


def test_ray_ivf_shards_share_one_quantizer(ray_local, tmp_path, corpus):
    folder, _, xq = corpus
    cfg = IndexConfig(factory="IVF8,PQ4x4", train_sample=1000, nprobe=3)
    manifest = run_indexing(cfg, folder, tmp_path / "ivf")
    assert manifest["trained"]["file"] == "trained.index"
    # every shard task started from the one trained quantizer: the result equals the local search
    # of the same files, and a local build from the same sample gives identical shard files
    par_scores, par_ids = run_search_parallel(tmp_path / "ivf", xq, 10)
    loc_scores, loc_ids = search_index(tmp_path / "ivf", xq, 10)
    np.testing.assert_array_equal(par_ids, loc_ids)
    np.testing.assert_array_equal(par_scores, loc_scores)

    from lead_ray.corpus.index import build_index

    local = build_index(folder, tmp_path / "local", cfg)
    assert [e["sha256"] for e in local["shards"]] == [e["sha256"] for e in manifest["shards"]]
