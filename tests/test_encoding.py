"""CorpusEncoder and the local encoding loop: oracle equality with per-text `embed`, global
doc_idx in fixed-size shards, resume after a crash or a SIGKILL, MaxP windows, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lead_ray.config import BuildSpec, Config, ConfigError, ModelSource, TeacherConfig
from lead_ray.corpus.embeddings import iter_shards, read_shard
from lead_ray.corpus.encode import (
    CorpusEncoder,
    encode_corpus,
    encode_queries,
    load_dual_encoder,
    split_passages,
)
from lead_ray.corpus.ids import IdMap
from lead_ray.data.corpus import passage_text
from lead_ray.data.store import CorpusStore
from lead_ray.models.build import build_teacher, save_model

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "river stone light market garden protein cell winter signal method paper bridge "
    "carbon theory music doctor island engine forest letter"
).split()


def tiny_model(
    folder: Path, kind: str = "dual_encoder", pooling: str = "cls", normalize: bool = False
) -> Path:
    spec = BuildSpec(layers=2, hidden=32, heads=2, intermediate=37, seed=3)
    cfg = TeacherConfig(
        kind=kind,
        model=ModelSource(build=spec),
        pooling=pooling,
        normalize=normalize,
        max_doc_length=48,
    )
    folder.mkdir(parents=True)
    save_model(build_teacher(cfg), folder)
    return folder


def corpus_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 70))))
        rows.append(
            {"_id": f"doc-{i}", "title": "" if i % 3 else f"title {WORDS[i % 20]}", "text": text}
        )
    return rows


def build_store(folder: Path, rows: list[dict]) -> CorpusStore:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "corpus.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return CorpusStore.build(src, folder / "store")


def config(**encode) -> Config:
    return Config.from_dict(
        {
            "data": {"corpus": "unused"},
            "teacher": {"model": "unused"},
            "encode": {"batch_size": 8, "shard_rows": 64, **encode},
        }
    )


def read_all(folder: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    parts = [read_shard(path) for _, path in iter_shards(folder)]
    return (
        np.concatenate([p[0] for p in parts]),
        [d for p in parts for d in p[1]],
        np.concatenate([p[2] for p in parts]),
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "cls": tiny_model(root / "cls"),
        "mean": tiny_model(root / "mean", pooling="mean", normalize=True),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("corpus"), corpus_rows(300))


def batch_of(store: CorpusStore, rows: np.ndarray) -> dict[str, np.ndarray]:
    titles, texts = store.get(rows)
    return {
        "doc_idx": rows.astype(np.int64),
        "doc_id": store.doc_ids.take(rows).to_numpy(False),
        "title": np.asarray(titles, dtype=object),
        "text": np.asarray(texts, dtype=object),
    }


# ----------------------------------------------------------------------------- CorpusEncoder


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_encoder_restores_order_and_equals_per_text_embed(models, store, pooling):
    rows = np.random.default_rng(1).permutation(len(store))[:45]  # shuffled, mixed lengths
    batch = batch_of(store, rows)
    out = CorpusEncoder(str(models[pooling]), batch_size=7)(batch)
    np.testing.assert_array_equal(out["doc_idx"], rows)
    assert list(out["doc_id"]) == list(batch["doc_id"])
    model = load_dual_encoder(models[pooling])
    texts = [passage_text(h or None, t) for h, t in zip(batch["title"], batch["text"], strict=True)]
    oracle = torch.cat([model.embed([t], "passage") for t in texts]).numpy()  # no padding at all
    assert out["emb"].shape == (45, 32) and out["emb"].dtype == np.float32
    np.testing.assert_allclose(out["emb"], oracle, atol=2e-5)
    if pooling == "mean":  # the folder declares normalisation
        np.testing.assert_allclose(np.linalg.norm(out["emb"], axis=1), 1.0, atol=1e-5)


def test_float16_title_and_max_length(models, store):
    batch = batch_of(store, np.arange(40))
    full = CorpusEncoder(str(models["cls"]), batch_size=16)(batch)["emb"]
    half = CorpusEncoder(str(models["cls"]), batch_size=16, dtype="float16")(batch)["emb"]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), full, rtol=2e-3, atol=2e-3)

    no_title = CorpusEncoder(str(models["cls"]), title=False)(batch)["emb"]
    titled = np.array([bool(t) for t in batch["title"]])
    assert titled.any() and (~titled).any()
    np.testing.assert_allclose(no_title[~titled], full[~titled], atol=2e-5)  # same text
    assert np.abs(no_title[titled] - full[titled]).max() > 1e-3  # the title is encoded

    short = CorpusEncoder(str(models["cls"]), max_length=8)(batch)["emb"]
    model = load_dual_encoder(models["cls"])
    model.max_doc_length = 8
    texts = [passage_text(h or None, t) for h, t in zip(batch["title"], batch["text"], strict=True)]
    np.testing.assert_allclose(short, model.embed(texts, "passage").numpy(), atol=2e-5)


def test_encode_queries_keeps_input_order(models):
    model = load_dual_encoder(models["mean"])
    queries = ["a", "river stone light market garden", "cell", "protein winter signal"]
    got = encode_queries(model, queries, batch_size=3)
    oracle = torch.cat([model.embed([q], "query") for q in queries]).numpy()
    np.testing.assert_allclose(got, oracle, atol=2e-5)
    assert encode_queries(model, [], batch_size=3).shape == (0, 32)


@pytest.mark.parametrize("kind", ["colbert", "cross_encoder"])
def test_non_dual_encoder_is_refused_before_anything_is_written(tmp_path, store, kind):
    folder = tiny_model(tmp_path / kind, kind=kind)
    with pytest.raises(ConfigError, match=f"a {kind} model gives no single vector"):
        CorpusEncoder(str(folder))
    with pytest.raises(ConfigError, match=f"a {kind} model gives no single vector"):
        encode_corpus(config(), folder, store, tmp_path / "emb", progress=False)
    assert not (tmp_path / "emb").exists()


# ----------------------------------------------------------------------------- MaxP


def test_split_passages_windows_overlap_by_stride(models):
    tok = load_dual_encoder(models["cls"]).tokenizer
    words = WORDS + [w + "s" for w in WORDS[:5]]  # 25 words
    text = " ".join(words)
    content = tok(text, add_special_tokens=False)["input_ids"]  # [C]
    ids, owner, passage = split_passages(
        tok, [text, "river"], 12, maxp=True, stride=3, max_passages=10
    )
    inner = [w[1:-1] for w, o in zip(ids, owner, strict=True) if o == 0]  # without [CLS] / [SEP]
    assert inner[0] == content[:10]  # window 0 is the FirstP passage
    assert ids[0] == split_passages(tok, [text], 12)[0][0]
    for a, b in zip(inner, inner[1:], strict=False):
        assert a[-3:] == b[:3]  # consecutive windows share exactly `stride` tokens
    assert [t for w in inner for t in w[3:]][: len(content) - 3] == content[3:]  # all covered
    assert list(owner) == [0] * len(inner) + [1] and passage[-1] == 0
    assert list(passage[:-1]) == list(range(len(inner)))
    capped, capped_owner, capped_passage = split_passages(
        tok, [text, "river"], 12, maxp=True, stride=3, max_passages=2
    )
    assert capped == ids[:2] + ids[-1:] and list(capped_passage) == [0, 1, 0]
    with pytest.raises(ConfigError, match="maxp_stride=10"):
        split_passages(tok, [text], 12, maxp=True, stride=10, max_passages=2)


@pytest.mark.parametrize("maxp, stride, keep", [(False, 0, 1), (True, 0, 4), (True, 5, 3)])
def test_long_texts_give_the_tokenizers_own_windows(models, maxp, stride, keep):
    """Oracle: the cut-then-tokenise shortcut equals tokenising every text whole, for long and
    short texts, and for texts whose words are so long ([UNK]: one token per 150 characters)
    that the cut part is too short and the whole text must be tokenised after all."""
    import random

    from lead_ray.corpus.encode import _windows

    tok = load_dual_encoder(models["cls"]).tokenizer
    rng = random.Random(0)
    vocab = [*WORDS, "unbelievably", "a", "x" * 150, "électricité", "1,234.5"]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(0, 400))) for _ in range(60)]
    texts += ["x" * 150 + " " + "y" * 150] * 2 + ["word " * 500, ""]
    got = split_passages(tok, texts, 12, maxp=maxp, stride=stride, max_passages=keep)
    want = _windows(tok, texts, 12, maxp, stride, keep)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def test_maxp_encoder_rows_and_ids(models, store):
    batch = batch_of(store, np.arange(20, 50))
    first = CorpusEncoder(str(models["cls"]), max_length=16)(batch)
    out = CorpusEncoder(
        str(models["cls"]), max_length=16, doc_mode="maxp", maxp_stride=4, maxp_passages=3
    )(batch)
    rows, p = out["doc_idx"] // 3, out["doc_idx"] % 3
    np.testing.assert_array_equal(p, out["passage"])
    assert sorted(set(rows)) == list(range(20, 50)) and (np.diff(out["doc_idx"]) > 0).all()
    assert out["passages"].max() == 3 and out["passages"].min() == 1  # long texts capped at 3
    np.testing.assert_array_equal(np.bincount(rows - 20), out["passages"][p == 0])
    assert list(out["doc_id"]) == [batch["doc_id"][r - 20] for r in rows]
    np.testing.assert_allclose(out["emb"][p == 0], first["emb"], atol=2e-5)  # window 0 = FirstP


# ----------------------------------------------------------------------------- local loop


def test_local_encode_writes_fixed_shards_with_global_doc_idx(models, store, tmp_path):
    manifest = encode_corpus(config(), models["cls"], store, tmp_path / "emb", progress=False)
    assert manifest["complete"] and manifest["rows"] == 300 and manifest["dim"] == 32
    assert [e["rows"] for e in manifest["shards"]] == [64, 64, 64, 64, 44]
    assert manifest["model"]["fingerprint"] and manifest["maxp"] is False
    for entry, path in iter_shards(tmp_path / "emb"):
        doc_idx, _, _ = read_shard(path)
        np.testing.assert_array_equal(
            doc_idx, np.arange(64 * entry["shard"], 64 * entry["shard"] + entry["rows"])
        )
    doc_idx, doc_ids, emb = read_all(tmp_path / "emb")
    np.testing.assert_array_equal(doc_idx, np.arange(300))
    assert doc_ids == store.doc_ids.to_pylist()
    direct = CorpusEncoder(str(models["cls"]), batch_size=8)(batch_of(store, np.arange(300)))
    np.testing.assert_allclose(emb, direct["emb"], atol=2e-5)
    again = encode_corpus(config(), models["cls"], store, tmp_path / "emb", progress=False)
    assert again["last_run"]["encoded"] == []


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_reencodes_only_unfinished_shards(models, store, tmp_path):
    full = encode_corpus(config(), models["cls"], store, tmp_path / "full", progress=False)
    out = tmp_path / "emb"

    def crash_after_two(shard, entry):
        if shard == 1:
            raise Crash("node preempted")

    with pytest.raises(Crash):
        encode_corpus(config(), models["cls"], store, out, progress=False, on_shard=crash_after_two)
    partial = json.loads((out / "manifest.json").read_text())
    assert not partial["complete"] and [e["shard"] for e in partial["shards"]] == [0, 1]
    (out / ".shard-00002.parquet.tmp-deadbeef").write_bytes(b"half a shard")  # a killed write
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard-*")}

    encoded = []
    manifest = encode_corpus(
        config(), models["cls"], store, out, progress=False, on_shard=lambda s, e: encoded.append(s)
    )
    assert encoded == [2, 3, 4] and manifest["last_run"]["encoded"] == [2, 3, 4]
    assert {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.glob("shard-*")
        if p.name in kept
    } == kept  # untouched
    assert not list(out.glob(".*tmp-*"))
    assert [e["sha256"] for e in manifest["shards"]] == [e["sha256"] for e in full["shards"]]
    a, b = read_all(out), read_all(tmp_path / "full")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])


def test_corrupt_shard_and_changed_settings_are_redone(models, store, tmp_path):
    out = tmp_path / "emb"
    encode_corpus(config(), models["cls"], store, out, progress=False)
    (out / "shard-00003.parquet").write_bytes(b"not parquet")
    again = encode_corpus(config(), models["cls"], store, out, progress=False)
    assert again["last_run"]["encoded"] == [3]
    half = encode_corpus(config(dtype="float16"), models["cls"], store, out, progress=False)
    assert half["last_run"]["encoded"] == [0, 1, 2, 3, 4] and half["dtype"] == "float16"
    other = encode_corpus(config(dtype="float16"), models["mean"], store, out, progress=False)
    assert other["last_run"]["encoded"] == [0, 1, 2, 3, 4]
    assert other["model"]["fingerprint"] != half["model"]["fingerprint"]


def test_sigkill_mid_run_then_rerun_finishes(models, store, tmp_path):
    """A process killed with SIGKILL (no cleanup at all) after its second shard."""
    out = tmp_path / "emb"
    script = textwrap.dedent(f"""
        import os, signal
        from lead_ray.config import Config
        from lead_ray.data.store import CorpusStore
        from lead_ray.corpus.encode import encode_corpus
        cfg = Config.from_dict({config().to_dict()!r})
        def kill(shard, entry):
            if shard == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        encode_corpus(cfg, {str(models["cls"])!r}, CorpusStore.open({str(store.folder)!r}),
                      {str(out)!r}, progress=False, on_shard=kill)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    encoded = []
    final = encode_corpus(
        config(), models["cls"], store, out, progress=False, on_shard=lambda s, e: encoded.append(s)
    )
    assert encoded == [2, 3, 4] and final["complete"]
    ref = encode_corpus(config(), models["cls"], store, tmp_path / "ref", progress=False)
    assert [e["sha256"] for e in final["shards"]] == [e["sha256"] for e in ref["shards"]]


def test_maxp_corpus_keeps_each_document_in_its_shard(models, store, tmp_path):
    cfg = config(doc_mode="maxp", max_length=16, maxp_stride=4, maxp_passages=3)
    manifest = encode_corpus(cfg, models["cls"], store, tmp_path / "emb", progress=False)
    assert manifest["maxp"] and manifest["maxp_passages"] == 3 and manifest["rows"] > 300
    for entry, path in iter_shards(tmp_path / "emb"):
        doc_idx, doc_ids, _ = read_shard(path)
        rows = IdMap.for_embeddings(store.doc_ids, manifest).rows(doc_idx)
        lo = 64 * entry["shard"]
        assert set(rows) == set(range(lo, min(lo + 64, 300)))  # all docs, all their windows
        assert doc_ids == store.doc_ids.take(rows).to_pylist()
    doc_idx, _, emb = read_all(tmp_path / "emb")
    direct = CorpusEncoder(
        str(models["cls"]),
        batch_size=8,
        max_length=16,
        doc_mode="maxp",
        maxp_stride=4,
        maxp_passages=3,
    )(batch_of(store, np.arange(300)))
    np.testing.assert_array_equal(doc_idx, direct["doc_idx"])
    np.testing.assert_allclose(emb, direct["emb"], atol=2e-5)


# ----------------------------------------------------------------------------- CLI


def test_cli_encode_and_rerun(models, tmp_path):
    from typer.testing import CliRunner

    from lead_ray.cli.main import app

    rows = corpus_rows(90, seed=4)
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "beir" / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "river"}) + "\n"
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {{corpus: {tmp_path / 'beir' / 'corpus.jsonl'}, "
        f"queries: {tmp_path / 'beir' / 'queries.jsonl'}}}\n"
        f"teacher: {{model: {models['cls']}}}\nencode: {{shard_rows: 40, model: teacher}}\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["encode", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "90 rows, 3 shards" in res.output and "encoded now: 3 shards" in res.output
    res = runner.invoke(app, ["encode", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0 and "encoded now: 0 shards" in res.output
    colbert = tiny_model(tmp_path / "colbert", kind="colbert")
    res = runner.invoke(
        app,
        [
            "encode",
            str(cfg),
            "--out",
            str(tmp_path / "run2"),
            "--model",
            str(colbert),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2 and "a colbert model gives no single vector" in res.output
    assert "Traceback" not in res.output
