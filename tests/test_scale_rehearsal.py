"""The scale rehearsal (benchmarks/scale_rehearsal.py) at 100k passages and 20k documents: an
MS MARCO-shaped collection through the real `lead` stages, an encode killed half-way and
resumed, MaxP documents ranked as documents. Sizes only; no timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.mark.slow
@pytest.mark.ray
def test_rehearsal_100k_passages_20k_documents(tmp_path):
    import scale_rehearsal as sr

    from lead_ray.data.runs import read_run

    out = tmp_path / "scale"
    argv = ["--passages", "100000", "--documents", "20000", "--out", str(out), "--pq", "PQ16x4fs"]
    assert sr.main([*argv, "--kill-encode-at", "0.5"]) == 0
    records = json.loads((out / "rehearsal.json").read_text())
    for kind, rows, windows in (("passages", 100_000, 1), ("documents", 20_000, sr.WINDOWS)):
        r = records[kind]
        stages = r["stages"]
        assert set(stages) == {"generate", "prepare", "encode", "index", "search"}
        assert all(s["peak_bytes"] > 0 for n, s in stages.items() if n != "generate")
        # every document filled every MaxP window: one vector per (document, window)
        assert stages["encode"]["vectors"] == rows * windows
        killed = r["encode_killed"]
        assert killed["killed"] and 0 < killed["shards_done"] < killed["shards"]
        # the rerun wrote exactly the shards the killed run had not finished
        assert killed["redone"] == killed["shards"] - killed["shards_done"]
        assert killed["rewritten_finished"] == []
        assert r["search"]["queries"] == sr.DEV_QUERIES
        assert 0 < r["search"]["ann_recall_10"] <= 1 and 0 < r["search"]["ann_recall"] <= 1
        assert r["plan"]["embedding_bytes"] > 0
        ranking = read_run(out / kind / "run" / "runs" / "student-init" / "test.trec")
        assert len(ranking) == sr.DEV_QUERIES
        for docs in ranking.values():
            ids = [d for d, _ in docs]
            assert len(ids) == 100 and len(set(ids)) == 100  # k distinct documents
            if kind == "documents":
                assert all(d.startswith("D") for d in ids)  # document ids, never window ids
