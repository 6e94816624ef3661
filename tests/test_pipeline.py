"""End to end through the CLI: mine -> train -> encode -> index -> search -> evaluate -> report,
reruns that redo nothing, a killed stage that is finished on rerun, and the quickstart."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.data.examples import read_examples
from lead_ray.data.qrels import read_qrels

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def _files(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def test_pipeline_on_tiny_config_then_rerun_redoes_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["pipeline", str(TINY), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    for name in (
        "report.md",
        "metrics.json",
        "plots/loss.png",
        "plots/layer_kl.png",
        "plots/layer_weights.png",
        "runs/student/test.trec",
        "runs/student/test.tsv",
        "train/student/model.safetensors",
        "mine/examples.jsonl",
        "eval/student/test.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["headline"]) >= {"student", "student-init", "teacher", "teacher-init"}
    for system in metrics["headline"].values():
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in system.values())
    report = (out / "report.md").read_text()
    assert "| student |" in report and "![loss](plots/loss.png)" in report
    # the TREC run has 6 columns and at most search.k lines per query
    first = (out / "runs" / "student" / "test.trec").read_text().splitlines()[0].split()
    assert len(first) == 6 and first[1] == "Q0"

    before = _files(out)
    result = CliRunner().invoke(app, ["pipeline", str(TINY), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    after = _files(out)
    changed = {f for f in before if after.get(f) != before[f]}
    # only the run card (and the resolved config) are rewritten; no stage ran again
    assert changed <= {
        "report.md",
        "metrics.json",
        "config.yaml",
        "plots/loss.png",
        "plots/layer_kl.png",
        "plots/layer_weights.png",
    }, changed


def test_mined_negatives_never_contain_a_positive(tmp_path):
    result = CliRunner().invoke(app, ["mine", str(TINY), "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    examples = list(read_examples(tmp_path / "mine" / "examples.jsonl"))
    qrels = read_qrels(tmp_path / "synthetic" / "qrels" / "train.tsv")
    assert len(examples) == len(qrels)
    for ex in examples:
        assert 0 < len(ex.negative_ids) <= 5  # mine.keep in tiny.yaml
        assert not set(ex.negative_ids) & set(qrels[ex.query_id])


@pytest.mark.timeout(60)
def test_a_large_synthetic_collection_generates(tmp_path):
    """30,000 generated passages (the word pool once ran dry past ~4,000 and never returned):
    every passage keeps two words no other passage has, so each query has one answer."""
    from collections import Counter

    from lead_ray.config import SyntheticData
    from lead_ray.data.synthetic import generate

    data = generate(SyntheticData(docs=30_000, queries=50, test_queries=10, seed=1))
    assert len(data["corpus"]) == 30_000
    counts = Counter(w for d in data["corpus"] for w in d["text"].split())
    assert all(sum(counts[w] == 1 for w in d["text"].split()) == 2 for d in data["corpus"])


@pytest.mark.slow
def test_stage_killed_midway_is_finished_by_the_rerun(tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "lead_ray.cli.main",
        "pipeline",
        str(TINY),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "train.steps=30",
        "--set",
        "train.checkpoint_every=5",
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 300
    while not (out / "train" / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # nothing of the killed stage looks complete; the stages before it are
    assert (
        not (out / "train" / "manifest.json").exists() and not (out / "train" / "student").exists()
    )
    assert json.loads((out / "mine" / "manifest.json").read_text())["complete"]
    mine_mtime = (out / "mine" / "examples.jsonl").stat().st_mtime_ns
    result = CliRunner().invoke(
        app,
        [
            "pipeline",
            str(TINY),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "train.steps=30",
            "--set",
            "train.checkpoint_every=5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file()
    assert (out / "mine" / "examples.jsonl").stat().st_mtime_ns == mine_mtime  # not mined again
    steps = [
        json.loads(line)["step"]
        for line in (out / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 31))


@pytest.mark.slow
def test_quickstart_student_beats_its_untrained_self(tmp_path):
    """README command 1 (fewer steps, to keep the suite short): the real MiniLM teacher, the
    bundled sample, a 2-layer student; the run card shows the distilled student ahead."""
    out = tmp_path / "qs"
    result = CliRunner().invoke(
        app, ["quickstart", "--out", str(out), "--no-progress", "--set", "train.steps=30"]
    )
    assert result.exit_code == 0, result.output
    headline = json.loads((out / "metrics.json").read_text())["headline"]
    assert headline["student"]["nDCG@10"] > headline["student-init"]["nDCG@10"] + 0.03
    assert headline["teacher"]["nDCG@10"] > headline["student"]["nDCG@10"]
    for png in ("loss.png", "dev.png", "layer_kl.png", "layer_weights.png"):
        assert (out / "plots" / png).stat().st_size > 1000
    # the shipped config holds out a dev split: the reported student is the one chosen on it
    assert (out / "train" / "student-best" / "model.safetensors").is_file()
    assert "Selected `student-best`: highest dev nDCG@10" in (out / "report.md").read_text()
