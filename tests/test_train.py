"""The local LEAD trainer: `lead train` on the tiny config, exact resume after a kill, frozen and
trainable teachers of every kind, and a student with its own tokenizer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import word_batch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.config import load_config
from lead_ray.distill.metrics_log import read_metrics
from lead_ray.stages.dispatch import run_stage
from lead_ray.stages.run import Run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def _tiny(*overrides: str):
    return load_config(TINY, list(overrides))


def train(cfg, root: Path) -> Path:
    """The train stage on the run folder `root`; returns its train folder."""
    run_stage(Run(cfg, root, progress=False), "train")
    return root / "train"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_lead_train_cli_writes_a_loadable_student_and_the_loss_falls(tmp_path):
    from transformers import AutoModel

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(TINY), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    model = AutoModel.from_pretrained(str(out / "train" / "student"))
    assert model.config.num_hidden_layers == 2
    records = read_metrics(out / "train" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 31))
    first = sum(r["loss"] for r in records[:5]) / 5
    last = sum(r["loss"] for r in records[-5:]) / 5
    assert last < 0.8 * first
    for r in records:  # every term is logged, pairs sorted and within the models' depths
        assert {
            "loss_contrastive",
            "loss_teacher",
            "loss_response",
            "loss_layer",
            "layer_kl",
        } <= set(r)
        assert all(0 <= s < 2 and 0 <= t < 4 for s, t in r["pairs"])
    assert (out / "train" / "config.yaml").is_file()
    assert (out / "train" / "teacher" / "model.safetensors").is_file()
    assert json.loads((out / "train" / "manifest.json").read_text())["complete"] is True


def test_rerun_of_a_complete_run_does_nothing(tmp_path):
    cfg = _tiny("train.steps=4", "train.checkpoint_every=2")
    out = train(cfg, tmp_path)
    before = (out / "student" / "model.safetensors").stat().st_mtime_ns
    train(cfg, tmp_path)
    assert (out / "student" / "model.safetensors").stat().st_mtime_ns == before


def test_resuming_with_another_config_is_refused(tmp_path):
    from lead_ray.config import ConfigError

    train(_tiny("train.steps=2"), tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        train(_tiny("train.steps=2", "train.lr=0.1"), tmp_path)


def _start(out: Path, *sets: str) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "lead_ray.cli.main",
        "train",
        str(TINY),
        "--out",
        str(out),
        "--no-progress",
    ]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_final_weights(tmp_path):
    sets = ("train.steps=40", "train.checkpoint_every=10")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    proc = _start(resumed, *sets)
    deadline = time.time() + 240
    while not (resumed / "train" / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash right after the first checkpoint
    proc.wait()
    assert not (resumed / "train" / "manifest.json").exists()  # nothing looks complete
    ckpt = next((resumed / "train" / "checkpoints").glob("step-*/state.json"))
    assert json.loads(ckpt.read_text())["step"] < 40

    resumed = train(_tiny(*sets), resumed)  # the rerun resumes
    straight = train(_tiny(*sets), straight)
    steps = [r["step"] for r in read_metrics(resumed / "metrics.jsonl")]
    assert steps == list(range(1, 41))  # each step logged once, in order
    a, b = _weights(resumed / "student"), _weights(straight / "student")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert (
        read_metrics(resumed / "metrics.jsonl")[-1]["loss"]
        == read_metrics(straight / "metrics.jsonl")[-1]["loss"]
    )


@pytest.mark.parametrize("kind", ["colbert", "cross_encoder"])
def test_other_teacher_kinds_train(tmp_path, kind):
    cfg = _tiny(f"teacher.kind={kind}", "train.steps=3", "train.negatives=2")
    out = train(cfg, tmp_path)
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 3 and all(r["loss_layer"] >= 0 for r in records)
    # a cross-encoder teacher scores each query's own 1+n passages only
    assert records[0]["candidates"] == (3 if kind == "cross_encoder" else 8 * 3)
    assert (out / "teacher" / "lead_model.json").is_file()


def test_frozen_teacher_stays_fixed(tmp_path):
    from lead_ray.models.build import build_teacher

    cfg = _tiny("teacher.trainable=false", "train.steps=3")
    out = train(cfg, tmp_path)
    assert not (out / "teacher").exists()
    torch.manual_seed(cfg.train.seed)
    fresh = build_teacher(cfg.teacher).state_dict()
    trained = load_file(str(next((out / "checkpoints").glob("step-*")) / "model.safetensors"))
    for name, value in fresh.items():
        assert torch.equal(trained[f"teacher.{name}"], value), name
    assert read_metrics(out / "metrics.jsonl")[0]["loss_teacher"] == 0.0


def test_student_with_its_own_tokenizer_trains(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from lead_ray.data.synthetic import generate
    from lead_ray.models.build import load_model

    cfg = _tiny()
    texts = [d["text"] for d in generate(cfg.data.synthetic)["corpus"]]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts,
        trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ),
    )
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tok_dir = tmp_path / "own-tokenizer"
    fast.save_pretrained(tok_dir)
    out = train(
        _tiny(
            "train.steps=4",
            f"student.tokenizer={tok_dir}",
            "student.model={build: {layers: 2, hidden: 32, heads: 2, intermediate: 64}}",
        ),
        tmp_path / "run",
    )
    student = load_model(str(out / "student"))
    assert len(student.tokenizer) == 300 != 30522
    assert student.query_backbone.model.get_input_embeddings().num_embeddings == 300
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 4 and records[-1]["loss_layer"] > 0


class _Recorder:
    """An updater that keeps the gradients of each optimizer step instead of applying them."""

    def __init__(self, model):
        self.model, self.grads = model, {}

    def backward(self, loss):
        loss.backward()

    def step(self):
        params = self.model.named_parameters()
        self.grads = {n: p.grad.clone() for n, p in params if p.grad is not None}
        self.model.zero_grad(set_to_none=True)
        return {}


def test_accumulated_step_uses_the_mean_of_the_micro_batch_gradients():
    """`train.grad_accum`: one update from A micro-batches equals averaging the A gradients (the
    official code divides each loss by the accumulation steps), clipped once."""
    from lead_ray.distill.lead_model import build_lead_model
    from lead_ray.distill.optim import LocalUpdater, train_step

    cfg = _tiny("train.grad_accum=2", "train.grad_clip=0")
    model = build_lead_model(cfg).eval()  # no dropout: the passes below see the same function
    micro, pairs = [word_batch(range(3)), word_batch(range(3, 6))], [(0, 1), (1, 3)]
    recorder = _Recorder(model)
    metrics = train_step(model, micro, pairs, recorder)
    expected, losses = {}, []
    for batch in micro:
        loss, _ = model(batch, pairs)
        loss.backward()
        losses.append(float(loss.detach()))
        for n, p in model.named_parameters():
            if p.grad is not None:
                expected[n] = expected.get(n, 0) + p.grad / len(micro)
        model.zero_grad(set_to_none=True)
    assert metrics["loss"] == pytest.approx(sum(losses) / 2, rel=1e-6)
    assert set(recorder.grads) == set(expected)
    for n, g in expected.items():
        torch.testing.assert_close(recorder.grads[n], g, rtol=1e-5, atol=1e-7)
    # the real updater sees the same gradients: its reported norm is theirs
    m = train_step(model, micro, pairs, LocalUpdater(model, cfg))
    student = [g for n, g in expected.items() if n.startswith("student.")]
    norm = float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in student]))
    )
    assert m["grad_norm_student"] == pytest.approx(norm, rel=1e-4)


def test_fingerprint_ignores_settings_that_cannot_change_the_run():
    """A run written before `grad_accum` and `gradients` existed still resumes (their defaults
    and, in one process, `gradients` compute the same), while changing them where they matter
    refuses the resume."""
    from lead_ray.distill.checkpoint import config_fingerprint

    def fp(*overrides):
        return config_fingerprint(_tiny(*overrides).to_dict())

    before = _tiny().to_dict()
    for key in ("grad_accum", "gradients"):
        del before["train"][key]
    assert config_fingerprint(before) == fp() == fp("train.gradients=global_batch")
    assert fp("train.grad_accum=2") != fp()
    ray = ("train.backend=ray", "train.workers=2")
    assert fp(*ray, "train.gradients=global_batch") != fp(*ray)
    # moving a run off spot nodes (or onto them) resumes it
    assert fp(*ray, "train.worker_resources={spot: 1}") == fp(*ray)
