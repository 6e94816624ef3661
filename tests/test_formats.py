"""Published models used as published: one oracle per format, each model built in the test with
the stock library (tiny random weights, saved the way that library saves) and read by lead-ray,
whose final score must equal the library's own score in fp32.

- sentence-transformers bi-encoder (Transformer, Pooling, Dense, Normalize, prompts);
- cross-encoders: a transformers `*ForSequenceClassification` checkpoint and a
  sentence-transformers `CrossEncoder` folder (BERT, RoBERTa and DistilBERT heads);
- ColBERT in the colbert-ai layout and in the PyLate layout. Both libraries pin older
  transformers, so they run in a subprocess with their own packages (`make setup` puts them in
  `.venv/oracles/`; tests/oracles/ holds the requirement lists and the scripts).

Also: a missing head is an error naming its tensors; a Hub id is read offline from a cache the
test fills; bf16 ColBERT scoring under CPU autocast matches fp32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lead_ray.config import ConfigError, TeacherConfig
from lead_ray.models.build import build_teacher

REPO = Path(__file__).resolve().parents[1]
ORACLES = REPO / ".venv" / "oracles"
QUERIES = ["what is a tiny model", "how do layers score passages, really?"]
PASSAGES = [
    "tiny models are small networks.",
    "the weather is nice today; it rains in the hills!",
    "layers of a transformer produce hidden states",
    "a",
]


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def tiny_config(cls, tokenizer, **kw):
    return cls(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=37,
        **kw,
    )


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, tokenizer) -> Path:
    """A plain tiny BERT encoder folder, saved by transformers."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    BertModel(tiny_config(BertConfig, tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def lead_scores(folder: Path, kind: str, **kw) -> torch.Tensor:
    """lead-ray's final scores [Q, P], every query against every passage, unscaled."""
    model = build_teacher(TeacherConfig(kind=kind, model=str(folder), scale=1.0, **kw)).eval()
    with torch.no_grad():
        return torch.stack([model.scores([q], PASSAGES).final[0] for q in QUERIES]) / model.scale


# ----------------------------------------------------------------------------- bi-encoders


def test_sentence_transformers_bi_encoder_with_dense_normalize_and_prompts(encoder, tmp_path):
    from sentence_transformers import SentenceTransformer, models

    torch.manual_seed(1)
    modules = [
        models.Transformer(str(encoder)),
        models.Pooling(32, "mean"),
        models.Dense(32, 24, activation_function=torch.nn.Tanh()),
        models.Normalize(),
    ]
    st = SentenceTransformer(
        modules=modules, device="cpu", prompts={"query": "query: ", "document": "passage: "}
    )
    st.save(str(tmp_path / "st"))
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    want = st.similarity(st.encode_query(QUERIES), st.encode_document(PASSAGES))
    assert st.similarity_fn_name == "cosine"
    model = build_teacher(TeacherConfig(model=str(tmp_path / "st"))).eval()
    assert (model.pooling, model.normalize, model.scale) == ("mean", True, 20.0)
    assert model.prompts == {"query": "query: ", "passage": "passage: "}
    with torch.no_grad():
        got = model.scores(QUERIES, PASSAGES, layers=[2], own=False)
    torch.testing.assert_close(got.final / 20, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.layers[0], got.final)  # the head scores every layer


# ----------------------------------------------------------------------------- cross-encoders


def _seqcls(kind: str, tokenizer, folder: Path) -> Path:
    """A tiny one-logit sequence classifier of `kind`, saved as transformers saves it."""
    import transformers as tf

    torch.manual_seed(2)
    cls, config = {
        "bert": (tf.BertForSequenceClassification, tf.BertConfig),
        "roberta": (tf.RobertaForSequenceClassification, tf.RobertaConfig),
        "distilbert": (tf.DistilBertForSequenceClassification, tf.DistilBertConfig),
    }[kind]
    extra = {
        "roberta": {"pad_token_id": 0, "type_vocab_size": 2},
        "distilbert": {"dim": 32, "n_layers": 3, "n_heads": 2, "hidden_dim": 37},
    }.get(kind, {})
    cls(tiny_config(config, tokenizer, num_labels=1, **extra)).save_pretrained(folder)
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if kind == "distilbert":
        tok.model_input_names = ["input_ids", "attention_mask"]  # DistilBERT takes no token types
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "kind, saved_by",
    [
        ("bert", "transformers"),
        ("roberta", "sentence-transformers"),
        ("distilbert", "transformers"),
    ],
)
def test_cross_encoder_scores_equal_sentence_transformers_predict(
    kind, saved_by, tokenizer, tmp_path
):
    from sentence_transformers import CrossEncoder

    folder = _seqcls(kind, tokenizer, tmp_path / "hf")
    if saved_by == "sentence-transformers":
        CrossEncoder(str(folder), device="cpu").save(str(tmp_path / "st"))
        folder = tmp_path / "st"
    ce = CrossEncoder(str(folder), device="cpu")
    pairs = [(q, p) for q in QUERIES for p in PASSAGES]
    want = torch.tensor(ce.predict(pairs, activation_fn=torch.nn.Identity())).view(len(QUERIES), -1)
    got = lead_scores(folder, "cross_encoder")
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=1e-5)
    model = build_teacher(TeacherConfig(kind="cross_encoder", model=str(folder))).eval()
    assert (
        model.style
        == {"bert": "pooler", "roberta": "sequence", "distilbert": "pre_classifier"}[kind]
    )
    with torch.no_grad():  # the model's own head on every layer: its last block is the final score
        s = model.scores(QUERIES[:1], PASSAGES, layers=[0, 2])
    torch.testing.assert_close(s.layers[1], s.final)
    save = tmp_path / "saved"
    save.mkdir()
    from lead_ray.models.build import load_model, save_model

    save_model(model, save)  # lead-ray's copy still loads in sentence-transformers, same scores
    again = CrossEncoder(str(save), device="cpu").predict(pairs, activation_fn=torch.nn.Identity())
    torch.testing.assert_close(
        torch.tensor(again).view(len(QUERIES), -1).float(), want.float(), atol=1e-5, rtol=1e-5
    )
    assert load_model(str(save)).style == model.style


def test_missing_heads_are_errors_naming_the_tensors(encoder, tokenizer, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(ConfigError, match="no cross-encoder head.*new_head: true"):
        build_teacher(TeacherConfig(kind="cross_encoder", model=str(encoder)))
    model = build_teacher(TeacherConfig(kind="cross_encoder", model=str(encoder), new_head=True))
    assert model.style == "lead"  # the LEAD code's head, started at random on request
    folder = _seqcls("bert", tokenizer, tmp_path / "ce")
    weights = load_file(str(folder / "model.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("classifier.")},
        str(folder / "model.safetensors"),
    )
    with pytest.raises(ConfigError, match=r"missing \['classifier.bias', 'classifier.weight'\]"):
        build_teacher(TeacherConfig(kind="cross_encoder", model=str(folder)))
    with pytest.raises(ConfigError, match="a cross_encoder model; set kind: cross_encoder"):
        build_teacher(TeacherConfig(kind="dual_encoder", model=str(folder)))
    with pytest.raises(ConfigError, match="colbert.dim=16 but the folder has no projection"):
        build_teacher(TeacherConfig(kind="colbert", model=str(encoder), colbert={"dim": 16}))


# ----------------------------------------------------------------------------- ColBERT


def _oracle(library: str, script: str, encoder: Path, out: Path, spec: dict) -> torch.Tensor:
    """Run the stock library in a subprocess; its scores [Q, P]."""
    site = ORACLES / library
    if not site.is_dir():
        pytest.fail(f"{site} is missing: run `make setup` (it installs the oracle libraries)")
    (out.parent / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "oracles" / script),
            str(encoder),
            str(out),
            str(out.parent / "spec.json"),
            str(out.parent / "scores.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.tensor(json.loads((out.parent / "scores.json").read_text())["scores"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "library, script", [("colbert-ai", "colbert_ai_oracle.py"), ("pylate", "pylate_oracle.py")]
)
def test_colbert_checkpoints_score_as_their_library_does(library, script, encoder, tmp_path):
    spec = {
        "dim": 16,
        "query_maxlen": 12,
        "doc_maxlen": 20,
        "queries": QUERIES,
        "passages": PASSAGES,
    }
    want = _oracle(library, script, encoder, tmp_path / "model", spec)
    got = lead_scores(tmp_path / "model", "colbert")
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=1e-5)
    model = build_teacher(TeacherConfig(kind="colbert", model=str(tmp_path / "model"))).eval()
    assert (model.max_query_length, model.max_doc_length, model.options.dim) == (12, 20, 16)
    assert not model.options.attend_to_mask and model.options.marker_position == "after_cls"


def test_bf16_colbert_scoring_under_cpu_autocast_matches_fp32(encoder):
    model = build_teacher(
        TeacherConfig(kind="colbert", model=str(encoder), new_head=True, colbert={"dim": 16})
    ).eval()
    with torch.no_grad():
        fp32 = model.scores(QUERIES, PASSAGES, layers=[0, 2], own=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model.scores(QUERIES, PASSAGES, layers=[0, 2], own=False)
    assert bf16.final.dtype == torch.float32  # MaxSim sums in fp32
    # bf16 keeps 8 bits of mantissa: each of ~12 summed cosines is off by up to ~2^-8
    torch.testing.assert_close(bf16.final, fp32.final, atol=0.1, rtol=0.02)
    torch.testing.assert_close(bf16.layers, fp32.layers, atol=0.5, rtol=0.02)


# ----------------------------------------------------------------------------- Hub ids


def fill_hub_cache(home: Path, repo: str, folder: Path, commit: str = "0" * 40) -> None:
    """What `hf download repo` leaves in HF_HOME: blobs linked from a snapshot and refs/main."""
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    for path in folder.rglob("*"):
        if path.is_file():
            target = snapshot / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)


def test_a_hub_id_is_read_offline_from_the_cache(encoder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lead_ray.cli.main import app
    from lead_ray.models.backbone import resolve_model_path

    fill_hub_cache(tmp_path / "hf", "lead-ray/tiny-bert", encoder)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    resolve_model_path.cache_clear()
    found = Path(resolve_model_path("lead-ray/tiny-bert"))
    assert (found / "config.json").is_file() and "models--lead-ray--tiny-bert" in str(found)
    with pytest.raises(ConfigError, match="not in the Hugging Face cache .* HF_HUB_OFFLINE is set"):
        resolve_model_path("lead-ray/not-there@v2")
    args = [
        "train",
        str(REPO / "configs" / "tiny.yaml"),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--set",
        "teacher.model=lead-ray/tiny-bert",
        "--set",
        "train.steps=2",
    ]
    result = CliRunner().invoke(app, args)
    resolve_model_path.cache_clear()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "train" / "student" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- students out


def test_a_trained_student_is_a_complete_sentence_transformers_model(tmp_path):
    """Trained with cosine (a Normalize-ending teacher), prompts and a Dense head inherited:
    `SentenceTransformer(folder)` gives the same vectors, the same ranking and the same
    similarity; the model card is there; every file is readable by others."""
    import stat

    from sentence_transformers import SentenceTransformer

    from lead_ray.config import load_config
    from lead_ray.models.build import load_model
    from lead_ray.stages.dispatch import run_stage
    from lead_ray.stages.run import Run

    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "train.steps=3", "teacher.normalize=true", "teacher.query_prompt='query: '",
        "teacher.passage_prompt='passage: '"])  # fmt: skip
    run_stage(Run(cfg, tmp_path, progress=False), "train")
    folder = tmp_path / "train" / "student"
    ours = load_model(str(folder)).eval()
    st = SentenceTransformer(str(folder), device="cpu")
    assert st.similarity_fn_name == "cosine" and ours.normalize and ours.scale == 20.0
    q_st, p_st = (
        st.encode_query(QUERIES, convert_to_tensor=True),
        st.encode_document(PASSAGES, convert_to_tensor=True),
    )
    with torch.no_grad():
        q, p = ours.embed(QUERIES, "query"), ours.embed(PASSAGES, "passage")
    torch.testing.assert_close(q_st, q, atol=1e-5, rtol=1e-5)  # the prompts travelled too
    torch.testing.assert_close(p_st, p, atol=1e-5, rtol=1e-5)
    # the similarity it publishes is ours (cosine; ranks of a 3-step student are near ties)
    torch.testing.assert_close(st.similarity(q_st, p_st), q @ p.T, atol=1e-5, rtol=1e-5)
    card = (folder / "README.md").read_text()
    assert "library_name: sentence-transformers" in card and "SentenceTransformer(" in card
    assert "cosine similarity" in card and "query 'query: '" in card
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, (path, oct(mode))  # group and others can read


def test_separate_towers_are_refused_as_sentence_transformers_and_say_how_to_load(tmp_path):
    from lead_ray.config import load_config
    from lead_ray.stages.dispatch import run_stage
    from lead_ray.stages.run import Run

    cfg = load_config(
        REPO / "configs" / "tiny.yaml", ["train.steps=2", "student.shared_towers=false"]
    )
    run_stage(Run(cfg, tmp_path, progress=False), "train")
    folder = tmp_path / "train" / "student"
    assert (folder / "query" / "model.safetensors").is_file() and not (
        folder / "modules.json"
    ).exists()
    card = (folder / "README.md").read_text()
    assert "not a sentence-transformers model" in card and "load_model" in card


# ----------------------------------------------------------------------------- lead rerank


@pytest.mark.slow
def test_lead_rerank_checks_a_teacher_on_a_published_run(tmp_path):
    """The packaged MiniLM, as published (mean pooling, cosine), re-ranks BM25's top 30 on the
    TREC DL 2019 pool: TREC run out, metrics in, and far better than the run it re-ranked
    (BM25: nDCG@10 0.5058 with these qrels)."""
    from conftest import shared_data
    from typer.testing import CliRunner

    from lead_ray.cli.main import app

    pool = shared_data("msmarco-dl19-pool")
    cfg = tmp_path / "rerank.yaml"
    cfg.write_text(
        f"data: {{beir: {pool}}}\nteacher: {{model: all-MiniLM-L6-v2, max_doc_length: 128}}\n"
        "search: {rerank_depth: 30}\nevaluate: {metrics: [nDCG@10, RR@10], trec_dl: true}\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "rerank",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            "--run",
            str(pool / "runs" / "BM25.trec"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "rerank.json").read_text())
    assert summary["queries"] == 43 and summary["mode"].endswith("top-30")
    lines = (tmp_path / "out" / "run.trec").read_text().splitlines()
    assert len(lines) == 43 * 30 and lines[0].split()[1] == "Q0"
    assert summary["metrics"]["nDCG@10"] > 0.6 > 0.5058


def test_encode_precision_runs_under_autocast_and_matches_fp32(tmp_path):
    """encode.precision: bf16 and fp16 autocast where the device supports them (this CPU does),
    close to fp32; a name that is no precision is one clear error."""
    import numpy as np

    from lead_ray.corpus.encode import CorpusEncoder, autocast_dtype

    batch = {
        "doc_idx": np.arange(4),
        "doc_id": np.array(list("abcd"), dtype=object),
        "title": np.array([""] * 4, dtype=object),
        "text": np.array(PASSAGES, dtype=object),
    }
    vecs = {
        p: CorpusEncoder("all-MiniLM-L6-v2", precision=p, device="cpu")(batch)["emb"]
        for p in ("fp32", "bf16", "fp16")
    }
    for p in ("bf16", "fp16"):
        cos = (vecs[p] * vecs["fp32"]).sum(-1)  # unit vectors (the model normalises)
        assert cos.min() > 0.99, (p, cos)
    with pytest.raises(ConfigError, match="one of fp32, bf16, fp16"):
        autocast_dtype("int8", torch.device("cpu"))
