"""The seams between stages: the stage graph, the run layout, the dispatch (local or Ray), stamps
that skip unchanged stages, `lead cache-teacher` as a product verb, and a new model kind added
through the registry alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.config import load_config
from lead_ray.stages.dispatch import run_stage, runs_on_ray
from lead_ray.stages.graph import STAGES, VERBS, stage
from lead_ray.stages.layout import PATHS, RunLayout
from lead_ray.stages.pipeline import run_pipeline
from lead_ray.stages.run import Run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def tiny(*overrides: str):
    return load_config(TINY, list(overrides))


def test_every_stage_is_a_verb_and_a_submittable_job():
    from lead_ray.cli.common import command_modules  # noqa: F401  (registers the verbs)
    from lead_ray.distributed.jobs import VERBS as JOB_VERBS

    commands = {c.name for c in app.registered_commands}
    assert set(VERBS) <= commands and set(VERBS) <= set(JOB_VERBS)
    assert set(STAGES) - set(VERBS) == {
        "evaluate"
    }  # `lead search` evaluates; `lead evaluate` scores files
    for st in STAGES.values():
        assert set(st.needs) <= set(STAGES), st.name  # the graph is closed
    with pytest.raises(ValueError, match="unknown stage 'bogus'"):
        stage("bogus")


def test_dispatch_picks_the_ray_implementation_when_the_config_or_the_caller_asks():
    run = Run(tiny(), "/nonexistent")
    assert not any(runs_on_ray(run, st, None) for st in STAGES.values())  # the tiny config: local
    assert runs_on_ray(Run(tiny("train.backend=ray"), "/x"), stage("train"), None)
    assert runs_on_ray(Run(tiny("encode.actors=2"), "/x"), stage("encode"), None)
    assert runs_on_ray(Run(tiny("search.parallel=true"), "/x"), stage("search"), None)
    cluster = Run(tiny("ray.address=auto"), "/x")
    assert {n for n, st in STAGES.items() if runs_on_ray(cluster, st, None)} == {
        "encode",
        "index",
        "search",
    }  # training on a cluster still follows train.backend
    assert not runs_on_ray(Run(tiny("encode.actors=2"), "/x"), stage("encode"), False)  # forced
    assert runs_on_ray(run, stage("index"), True) and not runs_on_ray(run, stage("report"), True)


def test_the_layout_spells_every_path_under_the_run_folder(tmp_path):
    layout = RunLayout(tmp_path / "run")
    for name in PATHS:
        assert getattr(layout, name).is_relative_to(layout.root), name
    with pytest.raises(AttributeError, match="no path 'bogus'"):
        layout.bogus  # noqa: B018
    assert RunLayout.from_dict(layout.to_dict()) == RunLayout(layout.root.resolve())
    shared = RunLayout(tmp_path / "cell", corpus_dir=tmp_path / "corpus")
    assert shared.corpus == tmp_path / "corpus" and shared.train == tmp_path / "cell" / "train"
    # a frozen teacher is its initial model (one set of embeddings); a trained one its own
    assert layout.system("teacher").key == "teacher-init"
    layout.trained_model("teacher").mkdir(parents=True)
    assert layout.system("teacher").folder == layout.train / "teacher"
    folder = layout.system(tmp_path / "my models" / "e5-small")
    assert (folder.name, folder.key) == ("e5-small", "e5-small")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Run:
    run = Run(tiny("train.steps=4"), tmp_path_factory.mktemp("stages") / "run", progress=False)
    run_pipeline(run)
    return run


def test_stamped_stages_skip_while_inputs_and_settings_are_unchanged(tiny_run):
    layout = tiny_run.layout
    trec = layout.run_file("student", "test")
    stamp = layout.stamp("search:student:test")
    before = (trec.stat().st_mtime_ns, stamp.stat().st_mtime_ns)
    again = Run(tiny_run.cfg, layout, progress=False)
    result = run_stage(again, "search", "student", "test")
    assert (trec.stat().st_mtime_ns, stamp.stat().st_mtime_ns) == before  # skipped
    assert result == json.loads(layout.run_file("student", "test", "json").read_text())
    assert "search:student:test" not in again.times

    fewer = Run(tiny("train.steps=4", "search.k=5"), layout, progress=False)
    run_stage(fewer, "search", "student", "test")  # a setting it reads changed: searched again
    assert trec.stat().st_mtime_ns != before[0]
    assert max(len(r) for r in _run_lengths(trec).values()) == 5
    evaluated = run_stage(fewer, "evaluate", "student", "test")  # its input (the run) changed
    assert evaluated["k"] == 5
    run_stage(Run(tiny_run.cfg, layout, progress=False), "search", "student", "test")  # back


def _run_lengths(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        out.setdefault(line.split()[0], []).append(line)
    return out


def test_pipeline_status_lists_each_stage(tiny_run):
    result = CliRunner().invoke(
        app, ["pipeline", str(TINY), "--out", str(tiny_run.layout.root), "--status",
              "--set", "train.steps=4"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = dict(reversed(line.split()) for line in result.output.splitlines())
    assert lines["train"] == lines["encode:student"] == lines["evaluate:teacher:test"] == "done"


def test_cache_teacher_is_a_verb_and_training_from_the_cache_equals_the_live_teacher(tmp_path):
    """`lead cache-teacher` mines first (the texts training will draw), caches the frozen
    teacher's features there, and `teacher.cache: true` trains exactly as the live teacher."""
    cached, live = tmp_path / "cached", tmp_path / "live"
    frozen = ["--set", "train.steps=3", "--set", "teacher.trainable=false", "--no-progress"]
    runner = CliRunner()
    result = runner.invoke(app, ["cache-teacher", str(TINY), "--out", str(cached), *frozen])
    assert result.exit_code == 0, result.output
    assert "teacher cache:" in result.output
    manifest = json.loads((cached / "teacher-cache" / "manifest.json").read_text())
    mined = [json.loads(x) for x in (cached / "mine" / "examples.jsonl").open()]
    assert manifest["complete"] and manifest["layers"] == 4
    assert manifest["queries"] == len(mined)  # every training query, nothing else
    assert manifest["passages"] <= len(
        {d for ex in mined for d in ex["positive_ids"][:1] + ex["negative_ids"]}
    )

    examples = f"data.examples={cached / 'mine' / 'examples.jsonl'}"
    for out, extra in ((cached, "teacher.cache=true"), (live, examples)):
        result = runner.invoke(
            app, ["train", str(TINY), "--out", str(out), *frozen, "--set", extra]
        )
        assert result.exit_code == 0, result.output
    losses = [
        [json.loads(x)["loss"] for x in (d / "train" / "metrics.jsonl").open()]
        for d in (cached, live)
    ]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_a_new_teacher_kind_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    """The worked example of docs/architecture.md: a dual encoder with a projection head."""
    from lead_ray.models import registry

    monkeypatch.setitem(
        registry.KINDS, "projected", f"{ProjectedDualEncoder.__module__}:ProjectedDualEncoder"
    )
    cfg = tiny("teacher.kind=projected", "train.steps=2", "lead.layers=2")
    manifest = run_stage(Run(cfg, tmp_path, progress=False), "train")
    assert manifest["complete"]
    records = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").open()]
    assert len(records) == 2 and all(len(r["layer_kl"]) == 2 for r in records)
    from lead_ray.models.build import load_model

    teacher = load_model(str(tmp_path / "train" / "teacher")).eval()  # kind read from the folder
    assert isinstance(teacher, ProjectedDualEncoder)
    assert (tmp_path / "train" / "teacher" / "lead_proj.safetensors").is_file()
    with torch.no_grad():
        scores = teacher.scores(["a query"], ["a passage", "another one"], layers=[0, 3])
    assert scores.final.shape == (1, 2) and scores.layers.shape == (2, 1, 2)


# ----------------------------------------------------------------------------- the worked example
# (the same code as the diff in docs/architecture.md; a real kind lives in lead_ray/models/)

from lead_ray.models.base import Encoded, lengths, load_head, save_with_head  # noqa: E402
from lead_ray.models.dual_encoder import DualEncoder, resolve_pooling  # noqa: E402


class ProjectedDualEncoder(DualEncoder):
    """A dual encoder with a linear projection on its pooled vectors, at every layer (as the
    cross-encoder's head scores every layer)."""

    kind = "projected"
    HEAD = "lead_proj.safetensors"

    def __init__(self, backbone, tokenizer, dim: int = 16, **kw):
        super().__init__(backbone, tokenizer, **kw)
        self.proj = torch.nn.Linear(backbone.hidden_size, dim)

    @classmethod
    def from_config(cls, cfg, backbone, tokenizer, folder):
        pooling, normalize = resolve_pooling(cfg, folder)
        model = cls(backbone, tokenizer, pooling=pooling, normalize=normalize, **lengths(cfg))
        load_head(model.proj, folder, cls.HEAD)
        return model

    def encode(self, texts, side, layers=()):
        enc = super().encode(texts, side, layers)
        layer_vecs = None if enc.layers is None else self.proj(enc.layers)  # [L, B, D]
        return Encoded(final=self.proj(enc.final), layers=layer_vecs)  # final [B, D]

    def save(self, folder):
        save_with_head(self.query_backbone, self.proj, folder, self.HEAD)
        return {"pooling": self.pooling, "normalize": self.normalize}


def test_a_verb_whose_upstream_is_missing_names_the_verb_to_run(tmp_path):
    result = CliRunner().invoke(
        app, ["search", str(TINY), "--out", str(tmp_path), "--system", "teacher", "--no-progress"]
    )
    assert result.exit_code == 2, result.output
    assert "search needs index first" in result.output and "lead index" in result.output
    assert "--system teacher" in result.output and "Traceback" not in result.output
