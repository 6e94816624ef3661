"""CorpusStore: converted once, memory-mapped on reopen, exact id <-> row mapping, safe builds."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import shared_data

from lead_ray.data.corpus import iter_corpus
from lead_ray.data.errors import DataError
from lead_ray.data.store import CORPUS_FILE, IDS_FILE, CorpusStore
from lead_ray.storage import MANIFEST, read_manifest

# ids that sort differently as text and as numbers, non-ASCII ones, and a prefix of another
IDS = ["10", "9", "b", "a", "é", "Z", "100", "1", "中", "a-1", "a 1"]


def write_corpus(path: Path, ids=IDS, extra: list[str] = ()) -> Path:
    lines = [
        json.dumps({"_id": d, "title": f"title {d}", "text": f"text of {d} " * (i % 7 + 1)})
        for i, d in enumerate(ids)
    ]
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


def test_ids_and_texts_round_trip_across_batches(tmp_path):
    src = write_corpus(tmp_path / "corpus.jsonl")
    store = CorpusStore.build(src, tmp_path / "store", batch_rows=3)  # 4 batches, the last partial
    docs = list(iter_corpus(src))
    assert len(store) == len(IDS)
    assert store.doc_ids.to_pylist() == IDS
    np.testing.assert_array_equal(store.idx_of(IDS), np.arange(len(IDS)))
    order = np.array([10, 0, 5, 3, 3, 7, 1])  # across batches, repeated, unsorted
    titles, texts = store.get(order)
    assert texts == [docs[i].text for i in order] and titles == [docs[i].title for i in order]
    rows = [
        r
        for b in store.iter_batches(4)
        for r in zip(b["doc_idx"].tolist(), b["doc_id"], b["title"], b["text"], strict=True)
    ]
    assert rows == [(i, d.doc_id, d.title, d.text) for i, d in enumerate(docs)]
    part = list(store.iter_batches(2, start=3, stop=8))
    assert [b["doc_idx"].tolist() for b in part] == [[3, 4], [5, 6], [7]]
    assert part[0]["doc_idx"].dtype == np.int64


def test_idx_of_unknown_ids_and_edge_cases(tmp_path):
    store = CorpusStore.build(write_corpus(tmp_path / "c.jsonl"), tmp_path / "store")
    # ids before, between and after the sorted ids
    got = store.idx_of(["nope", "a", "", "zzzz", "0", "中", "a-"])
    np.testing.assert_array_equal(got, [-1, IDS.index("a"), -1, -1, -1, IDS.index("中"), -1])
    assert got.dtype == np.int64
    assert store.idx_of([]).shape == (0,)
    np.testing.assert_array_equal(store.idx_of([10, 9]), [0, 1])  # integer ids match their text
    with pytest.raises(IndexError, match="out of range"):
        store.get([len(IDS)])


def test_reopen_is_memory_mapped(tmp_path):
    src = write_corpus(tmp_path / "c.jsonl", ids=[f"p{i}" for i in range(3000)])
    CorpusStore.build(src, tmp_path / "store")
    before = pa.total_allocated_bytes()
    store = CorpusStore.open(tmp_path / "store")
    # Opening maps the files: pyarrow allocates nothing for ids, titles or texts.
    assert pa.total_allocated_bytes() - before == 0
    assert store.table.column("text").nbytes > 100_000
    assert store.get([2999])[1][0].startswith("text of p2999")
    assert store.idx_of(["p1234"]).tolist() == [1234]


def test_rebuild_is_skipped_until_the_source_changes(tmp_path):
    src = write_corpus(tmp_path / "c.jsonl")
    folder = tmp_path / "store"
    CorpusStore.build(src, folder)
    stamp = (folder / CORPUS_FILE).stat().st_mtime_ns, read_manifest(folder)["written_at"]
    CorpusStore.build(src, folder)
    assert ((folder / CORPUS_FILE).stat().st_mtime_ns, read_manifest(folder)["written_at"]) == stamp
    write_corpus(src, ids=["x", "y"])
    os.utime(src, ns=(1, 1))  # a different mtime even on coarse clocks
    store = CorpusStore.build(src, folder)
    assert store.doc_ids.to_pylist() == ["x", "y"] and read_manifest(folder)["rows"] == 2
    assert CorpusStore.build(src, folder, force=True).doc_ids.to_pylist() == ["x", "y"]


def test_a_failed_build_leaves_no_complete_looking_store(tmp_path):
    folder = tmp_path / "store"
    src = write_corpus(tmp_path / "c.jsonl")
    CorpusStore.build(src, folder)
    # The source changes; the rebuild fails mid-stream, after several batches were written.
    ids = [f"p{i}" for i in range(50)]
    write_corpus(src, ids=ids, extra=['{"_id": "broken", "text": '])
    os.utime(src, ns=(2, 2))
    with pytest.raises(DataError, match=r"c\.jsonl:51: malformed JSON"):
        CorpusStore.build(src, folder, batch_rows=8)
    assert read_manifest(folder) is None  # the old manifest does not vouch for anything any more
    assert not (folder / CORPUS_FILE).exists() and not (folder / IDS_FILE).exists()
    assert [p.name for p in folder.iterdir()] == []  # no temporary files either
    with pytest.raises(DataError, match="no complete corpus store"):
        CorpusStore.open(folder)
    # A stale temporary file from a killed writer is cleaned up by the next build.
    (folder / f".{CORPUS_FILE}.tmp-deadbeef").write_bytes(b"partial")
    write_corpus(src, ids=ids)
    os.utime(src, ns=(3, 3))
    assert len(CorpusStore.build(src, folder)) == 50
    assert sorted(p.name for p in folder.iterdir()) == sorted([CORPUS_FILE, IDS_FILE, MANIFEST])


def test_skip_mode_counts_bad_lines_in_the_manifest(tmp_path):
    src = write_corpus(tmp_path / "c.jsonl", ids=["a", "b"], extra=["not json", '{"_id": "c"}'])
    store = CorpusStore.build(src, tmp_path / "store", on_error="skip")
    assert store.doc_ids.to_pylist() == ["a", "b"]
    m = read_manifest(tmp_path / "store")
    assert m["skipped"] == 2 and m["skipped_by_problem"] == {
        "malformed JSON: Expecting value (column 1)": 1,
        "text": 1,
    }


def test_builds_from_a_beir_folder_the_sample_and_tsv(tmp_path):
    assert len(CorpusStore.build("@sample", tmp_path / "s")) == len(
        list(iter_corpus("@sample/corpus.jsonl"))
    )
    tsv = tmp_path / "collection.tsv"
    tsv.write_text("0\tzero\n1\tone\n", encoding="utf-8")
    store = CorpusStore.build(tsv, tmp_path / "t")
    assert store.get(store.idx_of(["1", "0"])) == (["", ""], ["one", "zero"])


def test_real_corpus_round_trip(tmp_path):
    src = shared_data("scifact") / "corpus.jsonl"
    store = CorpusStore.build(src, tmp_path / "scifact")
    docs = list(iter_corpus(src))
    assert len(store) == len(docs) == 5183
    rng = np.random.default_rng(0)
    pick = rng.choice(len(docs), 200, replace=False)
    idx = store.idx_of([docs[i].doc_id for i in pick])
    np.testing.assert_array_equal(idx, pick)
    titles, texts = store.get(idx)
    assert texts == [docs[i].text for i in pick] and titles == [docs[i].title for i in pick]


def test_a_store_travels_as_its_folder(tmp_path):
    # Ray ships objects to workers by pickling: a store must go as its path, never as its data.
    store = CorpusStore.build(write_corpus(tmp_path / "c.jsonl"), tmp_path / "store")
    blob = pickle.dumps(store)
    assert len(blob) < 500 and b"text of" not in blob
    again = pickle.loads(blob)
    assert again.doc_ids.to_pylist() == IDS and again.get([3]) == store.get([3])
