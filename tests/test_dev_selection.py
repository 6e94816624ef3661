"""Dev evaluation during training and the best student: the metrics in the log, `student-best`
re-scored from its folder equal to the best logged, early stopping where the log says it must,
the best kept across a resume, the pipeline encoding the selected student, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.config import ConfigError, load_config
from lead_ray.distill.dev_eval import BestStudent, dev_metrics
from lead_ray.distill.metrics_log import read_metrics
from lead_ray.models.build import load_model
from lead_ray.stages.dispatch import run_stage
from lead_ray.stages.run import Run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
DEV = ["data.dev_fraction=0.25", "train.eval_every=5"]


def tiny(*overrides: str):
    return load_config(TINY, [*DEV, *overrides])


def dev_log(train: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["dev_nDCG@10"]) for r in read_metrics(train / "metrics.jsonl")
            if "dev_nDCG@10" in r]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Run:
    run = Run(tiny(), tmp_path_factory.mktemp("dev"), progress=False)
    run_stage(run, "train")
    return run


def test_dev_metrics_are_logged_at_every_evaluation_and_the_last_step(trained):
    evals = dev_log(trained.layout.train)
    assert [s for s, _ in evals] == [5, 10, 15, 20, 25, 30]
    records = read_metrics(trained.layout.train_metrics)
    best = [r["dev_best"] for r in records if "dev_best" in r]
    assert best == [max(v for _, v in evals[: i + 1]) for i in range(len(evals))]
    assert trained.layout.dev_candidates.is_file()  # `lead train` mined the dev candidates


def test_student_best_rescored_from_its_folder_equals_the_best_logged(trained):
    train = trained.layout.train
    evals = dev_log(train)
    best_step, best = max(evals, key=lambda e: (e[1], -e[0]))  # ties: the earlier step
    manifest = json.loads((train / "manifest.json").read_text())
    assert manifest["selected"] == "student-best"
    assert manifest["selection"]["best_step"] == best_step
    assert manifest["selection"]["best"] == pytest.approx(best)
    rescored = dev_metrics(load_model(str(train / "student-best")), trained.dev_set())
    assert rescored["dev_nDCG@10"] == pytest.approx(best, abs=1e-6)
    last = dev_metrics(load_model(str(train / "student")), trained.dev_set())
    assert last["dev_nDCG@10"] == pytest.approx(evals[-1][1], abs=1e-6)
    assert trained.system("student").folder == train / "student-best"
    assert (train / "student-best" / "README.md").is_file()  # it has a model card too


def test_select_last_keeps_the_last_step(trained):
    run = Run(tiny("train.select=last"), trained.layout.root, progress=False)
    assert run.system("student").folder == trained.layout.train / "student"
    assert run.system("student-best").folder == trained.layout.train / "student-best"


def test_early_stop_happens_exactly_when_the_log_says(tmp_path):
    run = Run(tiny("train.early_stop=2"), tmp_path, progress=False)
    manifest = run_stage(run, "train")
    evals = dev_log(run.layout.train)
    tracker = BestStudent("nDCG@10", patience=2)
    expected = None
    for step, value in evals:
        tracker.update(step, {"dev_nDCG@10": value})
        if tracker.should_stop:
            expected = step
            break
    assert expected is not None, "the tiny run's dev score must fall for this test to mean much"
    assert manifest["stopped_at"] == expected == evals[-1][0] < 30
    assert manifest["early_stopped"] is True
    assert read_metrics(run.layout.train_metrics)[-1]["step"] == expected


def test_a_resumed_training_keeps_the_best_it_had(tmp_path, trained):
    import shutil

    run = Run(tiny("train.keep_checkpoints=3"), tmp_path, progress=False)
    run_stage(run, "train")
    train = run.layout.train
    # as if killed just after the step-10 checkpoint: later checkpoints and outputs never written
    for name in ("checkpoints/step-00000020", "checkpoints/step-00000030", "student", "teacher"):
        shutil.rmtree(train / name)
    (train / "manifest.json").unlink()
    (train / "checkpoints" / "latest").write_text("step-00000010\n")
    manifest = run_stage(Run(tiny("train.keep_checkpoints=3"), tmp_path, progress=False), "train")
    got, want = dev_log(train), dev_log(trained.layout.train)
    assert [s for s, _ in got] == [s for s, _ in want]  # an exact resume: the same scores
    assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-6)
    best_step = max(want, key=lambda e: (e[1], -e[0]))[0]
    assert best_step <= 10, "the best must come before the resume for this test to mean much"
    assert manifest["selection"]["best_step"] == best_step


def test_pipeline_encodes_the_selected_student_and_the_card_says_why(tmp_path):
    result = CliRunner().invoke(
        app,
        ["pipeline", str(TINY), "--out", str(tmp_path), "--no-progress", *sum(
            (["--set", o] for o in [*DEV, "train.steps=10"]), []
        )],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "embeddings" / "student-best").is_dir()
    assert not (tmp_path / "embeddings" / "student").exists()
    card = (tmp_path / "report.md").read_text()
    assert "Selected `student-best`: highest dev nDCG@10" in card
    assert "means of the first and last tenth" in card
    assert (tmp_path / "plots" / "dev.png").is_file()


def test_dev_evaluation_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="needs a dev split"):
        Run(load_config(TINY, ["train.eval_every=5"]), tmp_path).dev_set()
    examples = tmp_path / "ex.jsonl"
    examples.write_text('{"query_id": "q1", "positive_ids": ["d1"], "negative_ids": []}\n')
    given = Run(tiny(f"data.examples={examples}"), tmp_path / "r")
    with pytest.raises(ConfigError, match="train.dev_run"):
        given.dev_set()
    auto = Run(load_config(TINY, ["data.dev_fraction=0.25", f"data.examples={examples}"]),
               tmp_path / "r")  # fmt: skip
    assert auto.dev_set() is None  # asked for by default only: skipped with a warning
    assert Run(load_config(TINY), tmp_path / "s").dev_set() is None  # no dev split: none


def test_best_student_state_round_trips():
    b = BestStudent("nDCG@10", patience=2)
    assert b.update(5, {"dev_nDCG@10": 0.3}) and not b.update(10, {"dev_nDCG@10": 0.3})
    c = BestStudent("nDCG@10", patience=2)
    c.load(b.state())
    assert (c.best, c.step, c.stale) == (0.3, 5, 1)
    assert not c.update(15, {"dev_nDCG@10": 0.1}) and c.should_stop
