"""The corpus-side verbs one by one: `lead train` -> `lead encode` -> `lead index` -> `lead search`
-> `lead evaluate`, on the tiny config, with a flat and an ANN index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lead_ray.cli.main import app

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _ok(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verbs")
    _ok(["train", str(TINY), "--out", str(out), "--no-progress", "--set", "train.steps=4"])
    _ok(["encode", str(TINY), "--out", str(out), "--no-progress"])
    return out


def test_flat_index_search_and_evaluate(trained):
    _ok(["index", str(TINY), "--out", str(trained)])
    manifest = json.loads((trained / "index" / "student" / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 4  # 200 docs / 64 rows per shard
    out = _ok(["search", str(TINY), "--out", str(trained)])
    assert "nDCG@10" in out
    run = trained / "runs" / "student" / "test.trec"
    lines = run.read_text().splitlines()
    assert len({ln.split()[0] for ln in lines}) == 20 and all(len(ln.split()) == 6 for ln in lines)
    assert len((trained / "runs" / "student" / "test.tsv").read_text().splitlines()) == len(lines)
    summary = json.loads((trained / "eval" / "student" / "test.json").read_text())
    qrels = trained / "synthetic" / "qrels" / "test.tsv"
    evaluated = _ok(
        ["evaluate", str(run), str(qrels), "--json", str(trained / "eval.json"), "-m", "nDCG@10"]
    )
    assert "nDCG@10" in evaluated
    again = json.loads((trained / "eval.json").read_text())
    assert again["aggregate"]["nDCG@10"] == pytest.approx(summary["metrics"]["nDCG@10"])


@pytest.mark.ray
def test_ann_index_reports_recall_against_exact_and_ray_search_agrees(trained, ray_local):
    sets = [
        "--set",
        "index.factory=IVF4,Flat",
        "--set",
        "index.nprobe=1",
        "--set",
        "index.train_sample=200",
    ]
    _ok(["index", str(TINY), "--out", str(trained), "--ray", *sets])
    out = _ok(["search", str(TINY), "--out", str(trained), *sets])
    assert "ann_recall@20 vs exact" in out
    recall = json.loads((trained / "runs" / "student" / "test.json").read_text())["ann_recall"]
    assert 0 < recall <= 1
    local = (trained / "runs" / "student" / "test.trec").read_text()
    _ok(["search", str(TINY), "--out", str(trained), "--ray", *sets])
    assert (trained / "runs" / "student" / "test.trec").read_text() == local


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("index.factory=Bogus42", "index.factory: 'Bogus42' is not a usable faiss factory"),
        ("index.factory=IVF4096,Flat", "trains on at least 4,096 vectors; only 200 are available"),
        ("index.factory=IVF4,PQ8", "trains on at least 256 vectors; only 200 are available"),
        ("encode.memory_limit_gb=0.0001", "does not fit"),
    ],
)
def test_planner_refusals_are_one_line_errors(trained, setting, message):
    """A factory faiss rejects, a corpus too small to train an index, a plan above the memory
    limit: exit code 2 and one line naming the problem, before anything is built."""
    result = CliRunner().invoke(app, ["index", str(TINY), "--out", str(trained), "--set", setting])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.startswith("error:")
