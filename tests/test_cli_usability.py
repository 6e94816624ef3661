"""What a first-time user meets on the command line: the version, errors for unknown keys that
name their source and suggest the closest key, one verb list for submit and doctor, help text
that reflows, and plain progress lines when the output is not a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lead_ray import __version__
from lead_ray.cli.main import app
from lead_ray.progress import LineProgress

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"lead-ray {__version__}"


def test_unknown_set_key_names_set_and_suggests_the_key(tmp_path):
    result = invoke("train", TINY, "--out", str(tmp_path), "--set", "train.stepz=5")
    assert result.exit_code == 2
    assert "--set train.stepz=5" in result.output
    assert "did you mean train.steps?" in result.output
    assert "tiny.yaml" not in result.output  # not blamed on a line of the file
    assert not (tmp_path / "train").exists()


def test_unknown_yaml_key_names_file_and_line_and_suggests(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  synthetic: {docs: 20}\nteacher:\n  model: x\n  kindd: colbert\n")
    result = invoke("train", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert f"{bad}:5: teacher.kindd: unknown key (did you mean teacher.kind?)" in result.output


def test_a_bad_set_value_is_blamed_on_the_override(tmp_path):
    result = invoke("train", TINY, "--out", str(tmp_path), "--set", "train.steps=abc")
    assert result.exit_code == 2
    assert "--set train.steps=abc: train.steps:" in result.output


@pytest.mark.parametrize("verb", ["pipeline", "rerank", "mine", "train"])
def test_submit_and_doctor_take_the_same_verbs(verb):
    from lead_ray.cli.common import SUBMIT_VERBS
    from lead_ray.distributed.jobs import VERBS

    assert SUBMIT_VERBS == VERBS and verb in VERBS
    for command in ("submit", "doctor"):
        text = "".join(invoke(command, "--help").output.replace("│", " ").split())
        assert ",".join(VERBS) in text


def test_unknown_verb_is_refused_with_a_suggestion():
    for command in (["submit", TINY, "--out", "/tmp/x"], ["doctor"]):
        result = invoke(*command, "--verb", "trian")
        assert result.exit_code == 2
        assert "did you mean 'train'" in result.output


def test_evaluate_help_names_no_config():
    text = " ".join(invoke("evaluate", "--help").output.split())
    assert "config" not in text.lower()


def test_help_texts_reflow():
    from lead_ray.cli.main import app as the_app

    for command in the_app.registered_commands:
        assert "\n" not in (command.help or "").replace("\n\n", ""), command.name


def test_plain_progress_lines_are_whole():
    out = io.StringIO()
    with LineProgress(every=0.0, stream=out) as p:
        task = p.add_task("train", total=4, completed=0, rate="", info="")
        for step in range(1, 5):
            p.update(task, completed=step, rate="2.00 steps/s", info=f"loss {1 / step:.3f}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("train 2/4 (50%) 2.00 steps/s elapsed 0:00:00")
    assert "ETA" in lines[1] and lines[1].endswith("loss 0.500")
    assert lines[-1].startswith("train 4/4 (100%)") and "ETA" not in lines[-1]


def test_train_outside_a_terminal_prints_plain_lines(tmp_path):
    result = CliRunner().invoke(
        app,
        ["train", TINY, "--out", str(tmp_path), "--set", "train.steps=4"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "train 4/4 (100%)" in result.output
