"""The SciFact quality driver's plumbing (benchmarks/quality.py) and the teacher feature cache.

Quality is NOT tested here (docs/results.md reports it); these tests check that the cache
answers exactly what the live frozen teacher computes, that the driver runs every stage on a
tiny collection with tiny models (dev carved out of train, methods mapped to loss weights, the
cache used, records and the report written) and that a rerun trains nothing again.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lead_ray.config import BuildSpec, Config, ConfigError, ModelSource, TeacherConfig
from lead_ray.data.batching import TrainBatch
from lead_ray.distill.lead_model import build_lead_model
from lead_ray.models.build import build_teacher, save_model
from lead_ray.models.cached import CachedDualEncoder, build_feature_cache, load_cached_teacher

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

QUERIES = ["what do cats eat", "rain in spring", "how tall are old towers"]
PASSAGES = [
    "Cats eat fish and mice.",
    "Spring rain fills the rivers of the valley.",
    "Old towers were built tall to watch the plain.",
    "Bread is baked at dawn.",
    "The harbour freezes in winter.",
]


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> Path:
    """A saved 3-layer random dual encoder (mean pooling, raw dot), MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("teacher")
    cfg = TeacherConfig(
        model=ModelSource(build=BuildSpec(layers=3, hidden=32, heads=2, intermediate=64)),
        pooling="mean",
        normalize=False,
        max_query_length=16,
        max_doc_length=32,
    )
    save_model(build_teacher(cfg), folder)
    return folder


def _teacher_cfg(folder: Path, cache: Path | None = None, **kw) -> TeacherConfig:
    return TeacherConfig(
        model=str(folder),
        pooling="mean",
        normalize=False,
        trainable=cache is None,
        cache=None if cache is None else str(cache),
        max_query_length=16,
        max_doc_length=kw.pop("max_doc_length", 32),
        **kw,
    )


def test_cached_teacher_answers_exactly_what_the_live_teacher_computes(tiny_teacher, tmp_path):
    cache = build_feature_cache(
        _teacher_cfg(tiny_teacher), QUERIES, PASSAGES, tmp_path / "cache", batch_size=2
    )
    live = build_teacher(_teacher_cfg(tiny_teacher)).eval()
    cached = load_cached_teacher(_teacher_cfg(tiny_teacher, cache), cache)
    assert isinstance(cached, CachedDualEncoder)
    layers = [0, 2]
    queries, passages = (
        [QUERIES[2], QUERIES[0]],
        [PASSAGES[4], PASSAGES[1], PASSAGES[0]],
    )  # any order
    with torch.no_grad():
        want = live.score_encoded(
            live.encode_queries(queries, layers), live.encode_passages(passages, layers)
        )
    got = cached.score_encoded(
        cached.encode_queries(queries, layers), cached.encode_passages(passages, layers)
    )
    torch.testing.assert_close(got.final, want.final, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.layers, want.layers, atol=1e-5, rtol=1e-5)  # [2, 2, 3]
    assert got.layers.shape == (2, 2, 3)
    with pytest.raises(ValueError, match="not in the teacher cache"):
        cached.encode_passages(["a passage nobody cached"])


def test_cache_refuses_another_teacher_setting_and_a_trainable_teacher(tiny_teacher, tmp_path):
    cache = build_feature_cache(_teacher_cfg(tiny_teacher), QUERIES, PASSAGES, tmp_path / "cache")
    with pytest.raises(ConfigError, match="another teacher or other settings"):
        load_cached_teacher(_teacher_cfg(tiny_teacher, cache, max_doc_length=24), cache)
    with pytest.raises(ConfigError, match="not a complete teacher feature cache"):
        load_cached_teacher(_teacher_cfg(tiny_teacher, tmp_path / "nothing"), tmp_path / "nothing")
    with pytest.raises(ValueError, match="frozen dual encoder"):
        TeacherConfig(model=str(tiny_teacher), cache=str(cache))  # trainable by default


def test_lead_loss_with_the_cache_equals_the_loss_with_the_live_frozen_teacher(
    tiny_teacher, tmp_path
):
    cache = build_feature_cache(_teacher_cfg(tiny_teacher), QUERIES, PASSAGES, tmp_path / "cache")
    base = {
        "data": {"synthetic": {}},
        "student": {"model": {"init_from": "teacher", "layers": 2}},
        "lead": {"layers": 2},
        "train": {"seed": 3},
    }
    live_cfg = Config.from_dict(
        {**base, "teacher": _teacher_cfg(tiny_teacher).model_dump() | {"trainable": False}}
    )
    cached_cfg = Config.from_dict(
        {**base, "teacher": _teacher_cfg(tiny_teacher, cache).model_dump()}
    )
    batch = TrainBatch(
        ["q0", "q1"],
        QUERIES[:2],
        ["p0", "p3", "p1", "p4"],
        [PASSAGES[0], PASSAGES[3], PASSAGES[1], PASSAGES[4]],
        per_query=2,
    )
    pairs = [(0, 1), (1, 2)]
    losses = []
    for cfg, folder in ((live_cfg, None), (cached_cfg, cache)):
        model = build_lead_model(
            cfg, teacher_cache=folder
        ).eval()  # eval: no dropout, both students match
        loss, metrics = model(batch, pairs)
        losses.append((float(loss.detach()), metrics["layer_kl"], metrics["loss_response"]))
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-5)
    assert losses[0][1] == pytest.approx(losses[1][1], abs=1e-5)
    assert losses[0][2] == pytest.approx(losses[1][2], abs=1e-5)
    assert losses[0][2] > 0  # a real KD term, not a vacuous zero


# ----------------------------------------------------------------------------- the driver


def _tiny_beir(tmp_path: Path, docs: int = 60) -> Path:
    """A BEIR folder cut from the packaged sample: `docs` passages, queries judged on them."""
    from lead_ray.resources import resource_path

    src, out = resource_path("sample"), tmp_path / "beir"
    (out / "qrels").mkdir(parents=True)
    lines = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:docs]
    keep = {json.loads(ln)["_id"] for ln in lines}
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    qids = set()
    for split in ("train", "test"):
        rows = (src / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        kept = [r for r in rows[1:] if r.split("\t")[1] in keep]
        qids |= {r.split("\t")[0] for r in kept}
        (out / "qrels" / f"{split}.tsv").write_text(
            "\n".join([rows[0], *kept]) + "\n", encoding="utf-8"
        )
    queries = [
        ln
        for ln in (src / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(ln)["_id"] in qids
    ]
    (out / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    return out


def _tiny_base(tmp_path: Path, teacher: Path) -> Path:
    base = yaml.safe_load(
        (REPO / "benchmarks" / "configs" / "scifact-quality.yaml").read_text(encoding="utf-8")
    )
    base["data"]["dev_fraction"] = 0.25
    for side in ("teacher", "student"):
        base[side].update(max_query_length=16, max_doc_length=32)
    base["teacher"]["model"] = str(teacher)
    base["train"].update(batch_size=2, negatives=1, threads=1)
    base["mine"].update(k=10, keep=4)
    base["encode"]["batch_size"] = 16
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


@pytest.mark.slow
def test_driver_runs_the_core_grid_end_to_end_and_writes_the_report(tiny_teacher, tmp_path):
    import quality
    from quality_report import load_records

    from lead_ray.data.examples import read_examples
    from lead_ray.distill.metrics_log import read_metrics

    out, docs = tmp_path / "out", tmp_path / "docs"
    argv = [
        "--budget",
        "smoke",
        "--out",
        str(out),
        "--config",
        str(_tiny_base(tmp_path, tiny_teacher)),
        "--data",
        str(_tiny_beir(tmp_path)),
        "--teacher",
        "warm",
    ]
    quality.main(argv)

    # dev is carved out of train: disjoint from the mined training queries and from test
    mined = {ex.query_id for ex in read_examples(out / "mine" / "examples.jsonl")}
    [runs] = list((out / "runs").iterdir())  # the un-tuned reference, evaluated where it mined
    dev, test = (
        {ln.split()[0] for ln in (runs / f"{s}.trec").read_text().splitlines()}
        for s in ("dev", "test")
    )
    assert mined and dev and test and not (mined & dev) and not (dev & test)

    records = load_records(out)
    assert sorted(records) == [
        "de/teacher-init/contrastive",
        "de/teacher-init/lead",
        "de/teacher-init/response",
    ]
    for cell, by_seed in records.items():
        assert sorted(by_seed) == [1, 2]
        for rec in by_seed.values():
            assert 0.0 <= rec["test"]["nDCG@10"] <= 1.0 and rec["steps"] == 3
        cfg = yaml.safe_load(
            (out / "cells" / cell / "seed-1" / "train" / "config.yaml").read_text()
        )
        assert cfg["teacher"]["cache"] == str(
            out / "cache" / "de" / "teacher-cache"
        )  # cached frozen teacher
        assert cfg["teacher"]["model"] == str(
            out / "teachers" / "de" / "train" / "teacher"
        )  # warmed up
        weights = cfg["lead"]["weights"]
        method = cell.rsplit("/", 1)[1]
        assert (weights["response"] > 0, weights["layer"] > 0) == {
            "contrastive": (False, False),
            "response": (True, False),
            "lead": (True, True),
        }[method]
        steps = read_metrics(out / "cells" / cell / "seed-1" / "train" / "metrics.jsonl")
        assert len(steps) == 3
        assert all(len(s["layer_kl"]) == (2 if method == "lead" else 0) for s in steps)
    # seeds see different batches; the teacher warm-up trained the teacher only
    lead = out / "cells" / "de/teacher-init/lead"
    assert (
        read_metrics(lead / "seed-1/train/metrics.jsonl")[0]["loss"]
        != read_metrics(lead / "seed-2/train/metrics.jsonl")[0]["loss"]
    )
    warm = read_metrics(out / "teachers" / "de" / "train" / "metrics.jsonl")
    assert all(s["loss"] == pytest.approx(s["loss_teacher"]) for s in warm)

    before = {p: p.stat().st_mtime for p in (out / "cells").glob("**/record.json")}
    quality.main(argv)  # a rerun finds every cell done
    assert {p: p.stat().st_mtime for p in (out / "cells").glob("**/record.json")} == before

    import layer_alignment

    layer_alignment.main(
        ["--out", str(out), "--batches", "1", "--cells", "de/*response"]
    )  # '*' spans '/'
    first = json.loads((out / "layer_alignment.json").read_text(encoding="utf-8"))
    assert sorted(c for c in first if c != "_teacher") == ["de/teacher-init/response"]
    layer_alignment.main(["--out", str(out), "--batches", "1"])
    aligned = json.loads((out / "layer_alignment.json").read_text(encoding="utf-8"))
    profile = aligned.pop("_teacher")["de"]  # the tiny teacher's 3 layers + its final scores
    assert profile.pop("candidates") > 1 and all(len(v) == 4 for v in profile.values())
    assert sorted(aligned) == sorted(records) and all(
        sorted(v) == ["1", "2"] for v in aligned.values()
    )

    # a teacher trained along with its student is evaluated too, and listed with the teachers
    quality.main([*argv, "--cells", "de/teacher-init/lead-joint", "--seeds", "1"])
    joint = out / "cells" / "de/teacher-init/lead-joint" / "seed-1"
    assert (joint / "train" / "teacher").is_dir() and (
        joint / "eval" / "teacher" / "test.json"
    ).is_file()

    quality.main(["--out", str(out), "--report", "--docs", str(docs)])
    text = (docs / "results.md").read_text(encoding="utf-8")
    assert "block 0 ‖ teacher t0" in text and "de/teacher-init/lead-k1" not in text
    assert "| final | " in text  # the teacher's per-layer profile, final scores last
    assert (
        "| de teacher after training with its student (de/teacher-init/lead-joint, 1 seed) |"
        in text
    )
    for block in (
        "setup",
        "teachers",
        "students",
        "paired",
        "ablations",
        "ablations-paired",
        "losses",
        "alignment",
        "teacher-layers",
    ):
        assert f"<!-- quality:{block} -->" in text
    assert "de/teacher-init/lead | 2 |" in text and "lead − response" in text and " ± " in text
    assert "2-layer student before training" in text  # the row every teacher-init cell starts from
    assert (out / "systems" / "student-init" / "eval" / "student-init" / "test.json").is_file()
    assert (docs / "results-students.png").stat().st_size > 0 and (
        docs / "results-layers.png"
    ).stat().st_size > 0
    (docs / "results.md").write_text(
        text.replace("# SciFact quality results", "# Kept prose"), encoding="utf-8"
    )
    quality.main(["--out", str(out), "--report", "--docs", str(docs)])
    assert (docs / "results.md").read_text(encoding="utf-8").startswith("# Kept prose")


def test_report_pairs_ablations_with_their_group_and_averages_loss_terms_by_student_block(tmp_path):
    from quality_report import ablation_paired_rows, loss_rows, paired_rows

    def rec(test, dev):
        return {"test": {"nDCG@10": test}, "dev": {"nDCG@10": dev}}

    records = {
        "g/response": {1: rec(0.50, 0.60), 2: rec(0.52, 0.61)},
        "g/lead": {1: rec(0.51, 0.62), 2: rec(0.50, 0.60)},
        "g/lead-k1": {1: rec(0.55, 0.64), 3: rec(0.40, 0.40)},
    }  # seed 3 has no partner
    rows = {r["difference"]: r for r in ablation_paired_rows(records)}
    assert set(rows) == {"lead-k1 − response", "lead-k1 − lead"}
    assert rows["lead-k1 − response"]["seeds"] == 1
    assert rows["lead-k1 − response"]["test ΔnDCG@10"] == "0.0500"
    assert rows["lead-k1 − lead"]["dev seeds > 0"] == "1/1"
    assert {r["difference"] for r in paired_rows(records)} == {"lead − response"}

    # two seeds, 4 steps each; the student block of a pair is what the KL is grouped by
    for seed, shift in ((1, 0.0), (2, 1.0)):
        run = tmp_path / "cells" / "g" / "lead" / f"seed-{seed}" / "train"
        run.mkdir(parents=True)
        lines = [
            {
                "step": i + 1,
                "loss_contrastive": 2.0 - i * 0.5 + shift,
                "loss_response": 1.0,
                "loss_layer": 0.5,
                "student_acc": 0.5,
                "pairs": [[0, i % 2], [1, 5]],
                "layer_kl": [0.1 * (i + 1), 1.0 + shift],
            }
            for i in range(4)
        ]
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps(ln) + "\n" for ln in lines), encoding="utf-8"
        )
    first, last = loss_rows(tmp_path, ["g/lead", "g/missing"], last=2)
    assert (first["seeds"], first["steps"], last["steps"]) == (2, "first 2", "last 2")
    assert first["contrastive"] == "2.250"  # steps 1-2 of both seeds: (2.0 + 1.5 + 3.0 + 2.5) / 4
    assert last["contrastive"] == "1.250"
    assert first["KL student block 0"] == "0.150" and last["KL student block 0"] == "0.350"
    assert last["KL student block 1"] == "1.500"


def test_layer_series_average_seeds_over_the_steps_a_randomly_drawn_layer_was_paired():
    from quality_report import layer_series

    # seed A pairs teacher layer 3 on steps 1 and 3 only; seed B on steps 1-3
    seed_a = [
        {"step": 1, "pairs": [[0, 3]], "layer_weights": [0.2]},
        {"step": 2, "pairs": [[0, 1]], "layer_weights": [0.9]},
        {"step": 3, "pairs": [[0, 3]], "layer_weights": [0.4]},
    ]
    seed_b = [{"step": i, "pairs": [[0, 3]], "layer_weights": [0.6]} for i in (1, 2, 3)]
    series = layer_series([seed_a, seed_b], "layer_weights", side=1, window=2)
    xs, mean, std = series[3]
    assert list(xs) == [1, 2, 3]
    # step 1: (0.2 + 0.6) / 2; step 2: seed B only;
    # step 3: seed A smooths its two paired steps (0.2, 0.4)
    assert mean == pytest.approx([0.4, 0.6, 0.45]) and std == pytest.approx([0.2, 0.0, 0.15])
    xs, mean, _ = series[1]
    assert list(xs) == [2] and mean == pytest.approx([0.9])
    assert set(layer_series([seed_a], "layer_weights", side=0)) == {0}


def test_teacher_layer_rows_list_every_kind_in_grid_order_with_its_uniform_entropy():
    from quality_report import ALIGNMENT_TEACHER, teacher_layer_rows

    prof = {"entropy": [1.0, 0.5], "rank_loss": [1.2, 0.4], "std": [0.5, 2.0]}
    rows = teacher_layer_rows({ALIGNMENT_TEACHER: {"ce": {**prof, "candidates": 4}, "de": prof}})
    assert [(r["teacher"], r["layer"]) for r in rows] == [
        ("de", "t0"),
        ("de", "final"),
        ("ce", "t0"),
        ("ce", "final"),
    ]
    assert rows[0]["uniform entropy"] == "-" and rows[2]["uniform entropy"] == f"{math.log(4):.3f}"
    assert rows[3]["own ranking loss"] == "0.400" and teacher_layer_rows({}) == []


def test_teacher_profiles_keep_frozen_normalised_and_jointly_trained_teachers_apart(tmp_path):
    from layer_alignment import teacher_key
    from quality_report import ALIGNMENT_TEACHER, teacher_layer_rows

    from lead_ray.config import load_config, save_resolved

    runs = {
        "frozen": [],
        "raw": ["teacher.kind=colbert"],
        "norm": ["teacher.kind=colbert", "teacher.colbert.normalize_layers=true"],
        "joint": [],
    }
    for name, settings in runs.items():
        save_resolved(load_config(REPO / "configs" / "tiny.yaml", settings), tmp_path / name)
    (tmp_path / "joint" / "teacher").mkdir()  # what training exports when the teacher trains
    keys = [
        teacher_key(kind, tmp_path / name, 2)
        for kind, name in (
            ("de", "frozen"),
            ("colbert", "raw"),
            ("colbert", "norm"),
            ("de", "joint"),
        )
    ]
    assert keys == [
        "de",
        "colbert",
        "colbert, normalised layer states",
        "de, trained with the student (seed 2)",
    ]
    prof = {"entropy": [1.0], "rank_loss": [1.2], "std": [0.5]}
    rows = teacher_layer_rows({ALIGNMENT_TEACHER: {k: prof for k in reversed(keys)}})
    assert [r["teacher"] for r in rows] == [
        "de",
        "de, trained with the student (seed 2)",
        "colbert",
        "colbert, normalised layer states",
    ]


def test_alignment_matrix_is_every_pairwise_kl_with_the_final_scores_last():
    from layer_alignment import alignment_matrix

    from lead_ray.distill.losses import kl_divergence

    g = torch.Generator().manual_seed(0)
    s_layers, t_layers = torch.randn(2, 4, 6, generator=g), torch.randn(3, 4, 6, generator=g) * 3
    s_final, t_final = s_layers[-1], torch.randn(4, 6, generator=g)
    t_layers[1] = s_layers[0]  # a teacher layer the first student block matches exactly
    m = alignment_matrix(s_final, s_layers, t_final, t_layers, temperature=2.0)
    assert m.shape == (3, 4)
    for i, s in enumerate([*s_layers, s_final]):
        for j, t in enumerate([*t_layers, t_final]):
            assert m[i, j] == pytest.approx(float(kl_divergence(t, s, 2.0)), abs=1e-6)
    assert torch.equal(m[1], m[2])  # a dual encoder's final scores are its last block's
    assert float(
        alignment_matrix(s_final, s_layers, t_final, t_layers, 1.0)[0, 1]
    ) == pytest.approx(0.0, abs=1e-6)
    assert (m >= -1e-6).all()


def test_teacher_profile_reads_uniform_scores_as_no_signal():
    import math

    from layer_alignment import teacher_profile

    labels = torch.tensor([0, 2])
    flat = torch.zeros(1, 2, 4)  # one layer, 2 queries, 4 candidates: every score equal
    sharp = torch.tensor([[[9.0, 0, 0, 0], [0, 0, 9.0, 0]]])  # the positive far ahead
    prof = teacher_profile(torch.cat([flat, sharp]), labels, temperature=1.0)
    assert prof["entropy"][0] == pytest.approx(math.log(4)) and prof["rank_loss"][
        0
    ] == pytest.approx(math.log(4))
    assert prof["entropy"][1] < 0.01 and prof["rank_loss"][1] < 0.001
    assert prof["std"][0] == 0 and prof["std"][1] == pytest.approx(4.5)
    assert (
        teacher_profile(sharp, labels, temperature=100.0)["entropy"][0] > 1.3
    )  # a high temperature flattens


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only"
)
def test_student_workers_die_with_a_killed_driver(tmp_path):
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "worker.pid"
    script = f"""
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {str(REPO / "benchmarks")!r})
import quality

def work(path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=quality._init_worker) as pool:
        pool.submit(work, {str(pid_file)!r}).result()
"""
    (tmp_path / "driver.py").write_text(
        script, encoding="utf-8"
    )  # spawn re-imports __main__ from a file
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py")])
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.2)
    worker = int(pid_file.read_text())
    driver.send_signal(signal.SIGKILL)  # no chance to shut its pool down
    driver.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its driver")
