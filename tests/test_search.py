"""Sharded search against one IndexFlatIP over all vectors; exact search, recall, runs."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa
import pytest

from lead_ray.config import IndexConfig
from lead_ray.corpus.embeddings import finalize, write_shard
from lead_ray.corpus.ids import IdMap
from lead_ray.corpus.index import build_index
from lead_ray.corpus.search import ann_recall, exact_search, search_index, set_search_params
from lead_ray.data.errors import DataError
from lead_ray.storage import read_manifest, write_manifest

D = 24
BOUNDS = [0, 7, 300, 301, 1000, 1333]  # uneven shards, two smaller than k


def _normal(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search") / "emb"
    xb = _normal(BOUNDS[-1], 0)
    entries = [
        write_shard(folder, s, np.arange(lo, hi), [f"doc{i}" for i in range(lo, hi)], xb[lo:hi])
        for s, (lo, hi) in enumerate(zip(BOUNDS[:-1], BOUNDS[1:], strict=True))
    ]
    finalize(folder, entries)
    return folder, xb, _normal(29, 1)  # 29 queries: odd, not a multiple of any batch size


def _flat(xb, metric=faiss.METRIC_INNER_PRODUCT):
    index = faiss.IndexFlat(D, metric)
    index.add(xb)
    return index


@pytest.mark.parametrize("merge", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_sharded_search_equals_one_flat_index(tmp_path, corpus, merge, batch_size):
    folder, xb, xq = corpus
    build_index(folder, tmp_path / "ix", IndexConfig(factory="Flat", merge=merge))
    k = 50  # larger than shards 0 and 2
    ref_scores, ref_ids = _flat(xb).search(xq, k)
    scores, ids = search_index(tmp_path / "ix", xq, k, batch_size=batch_size)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (29, k)
    assert len(np.unique(ref_scores)) == ref_scores.size  # distinct scores: ids must match exactly
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("metric", "faiss_metric"), [("ip", faiss.METRIC_INNER_PRODUCT), ("l2", faiss.METRIC_L2)]
)
def test_exact_search_streams_shards_and_equals_flat(corpus, metric, faiss_metric):
    folder, xb, xq = corpus
    ref_scores, ref_ids = _flat(xb, faiss_metric).search(xq, 40)
    scores, ids = exact_search(folder, xq, 40, metric=metric)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


def test_l2_index_sorts_by_distance(tmp_path, corpus):
    folder, xb, xq = corpus
    build_index(folder, tmp_path / "l2", IndexConfig(factory="Flat", metric="l2"))
    scores, ids = search_index(tmp_path / "l2", xq, 12)
    ref_scores, ref_ids = _flat(xb, faiss.METRIC_L2).search(xq, 12)
    np.testing.assert_array_equal(ids, ref_ids)
    assert (np.diff(scores, axis=1) >= 0).all()


def test_k_beyond_the_corpus_pads_with_minus_one(tmp_path, corpus):
    folder, xb, xq = corpus
    build_index(folder, tmp_path / "ix", IndexConfig(factory="Flat"))
    n = len(xb)
    scores, ids = search_index(tmp_path / "ix", xq[:3], n + 5)
    assert (ids[:, n:] == -1).all() and np.isneginf(scores[:, n:]).all()
    ref_scores, ref_ids = _flat(xb).search(xq[:3], n)
    np.testing.assert_array_equal(ids[:, :n], ref_ids)
    _, exact_ids = exact_search(folder, xq[:3], n + 5)
    np.testing.assert_array_equal(exact_ids, ids)


def test_search_parameters_reach_the_index(tmp_path, corpus):
    folder, xb, xq = corpus
    cfg = IndexConfig(factory="IVF8,Flat", train_sample=1333, nprobe=8)
    build_index(folder, tmp_path / "ivf", cfg)
    ref_scores, ref_ids = _flat(xb).search(xq, 10)
    _, ids = search_index(tmp_path / "ivf", xq, 10)  # nprobe 8 of 8 (from the manifest): exact
    np.testing.assert_array_equal(ids, ref_ids)
    _, one_list = search_index(tmp_path / "ivf", xq, 10, nprobe=1)
    assert ann_recall(one_list, ref_ids, 10) < 1.0
    build_index(folder, tmp_path / "hnsw", IndexConfig(factory="HNSW4"))
    _, low = search_index(tmp_path / "hnsw", xq, 10, ef_search=10)
    _, high = search_index(tmp_path / "hnsw", xq, 10, ef_search=400)
    assert ann_recall(high, ref_ids, 10) >= ann_recall(low, ref_ids, 10)
    assert ann_recall(high, ref_ids, 10) > 0.95
    with pytest.raises(ValueError, match="index.nprobe does not apply"):
        set_search_params(faiss.IndexFlatIP(D), nprobe=4)


def test_search_refuses_incomplete_index_and_wrong_dims(tmp_path, corpus):
    folder, _, xq = corpus
    build_index(folder, tmp_path / "ix", IndexConfig(factory="Flat"))
    with pytest.raises(ValueError, match=r"queries must be \[Q, 24\]"):
        search_index(tmp_path / "ix", xq[:, :10], 5)
    manifest = read_manifest(tmp_path / "ix")
    write_manifest(tmp_path / "ix", {**manifest, "complete": False})
    with pytest.raises(DataError, match="manifest.json: complete: the index build is not complete"):
        search_index(tmp_path / "ix", xq, 5)
    with pytest.raises(DataError, match="not an index folder"):
        search_index(folder, xq, 5)


def test_ann_recall_by_hand():
    exact = np.array([[1, 2, 3], [4, 5, 6], [7, -1, -1]])
    ann = np.array([[1, 2, 9], [6, 5, 4], [8, 7, -1]])
    # row 0: 2/3, row 1: 3/3, row 2: 1/1 (the -1 slots do not count)
    assert ann_recall(ann, exact, 3) == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert ann_recall(ann, exact, 1) == pytest.approx((1 + 0 + 0) / 3)
    with pytest.raises(ValueError, match="rows"):
        ann_recall(ann[:2], exact, 3)


def test_id_map_turns_index_results_into_a_run():
    ids = IdMap(pa.array([f"doc{i}" for i in range(1333)]))
    scores = np.array([[0.9, 0.5, -np.inf], [0.7, 0.6, 0.1]], np.float32)
    rows = np.array([[1332, 3, -1], [0, 301, 7]])
    expected = {
        "q1": [("doc1332", pytest.approx(0.9)), ("doc3", pytest.approx(0.5))],
        "q2": [
            ("doc0", pytest.approx(0.7)),
            ("doc301", pytest.approx(0.6)),
            ("doc7", pytest.approx(0.1)),
        ],
    }
    run = ids.to_run(["q1", "q2"], scores, rows)
    assert run == expected and all(isinstance(d, str) for d, _ in run["q2"])
    with pytest.raises(ValueError, match="query ids"):
        ids.to_run(["q1"], scores, rows)
