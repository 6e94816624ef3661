"""The sample collection shipped in the package (`lead quickstart` runs on it).

It must be present in the installed package, well formed (BEIR layout, consistent ids),
reproduced byte for byte by its seeded generator, hard for word matching (queries paraphrase
their passages) and easy enough for the packaged MiniLM teacher.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import lead_ray.resources
from lead_ray.resources import resource_path

REPO = Path(__file__).resolve().parents[1]
DATA_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv")
STOPWORDS = set(
    "a an and are as at be by did do does for from how in is it its of on or the "
    "to was what when where which who with".split()
)


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            pytest.fail(f"{path}:{n}: not JSON ({err})")
    return rows


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore", f"{path}: header {lines[0]!r}"
    rows = []
    for n, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        assert len(parts) == 3, f"{path}:{n}: {line!r}"
        rows.append((parts[0], parts[1], int(parts[2])))
    return rows


@pytest.fixture(scope="module")
def sample() -> dict:
    folder = resource_path("sample")
    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = read_jsonl(folder / "queries.jsonl")
    qrels = {split: read_qrels(folder / "qrels" / f"{split}.tsv") for split in ("train", "test")}
    return {"folder": folder, "corpus": corpus, "queries": queries, "qrels": qrels}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - STOPWORDS


def test_sample_ships_inside_the_package():
    folder = resource_path("sample")
    assert folder.parent == Path(lead_ray.resources.__file__).resolve().parent
    for name in (*DATA_FILES, "README.md", "LICENSE"):
        assert (folder / name).is_file(), f"{folder / name} missing"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 1_000_000, f"sample folder is {size} bytes"
    assert "CC0" in (folder / "LICENSE").read_text(encoding="utf-8")


def test_rows_are_well_formed_and_ids_unique(sample):
    corpus, queries = sample["corpus"], sample["queries"]
    assert 400 <= len(corpus) <= 800
    assert all(list(row) == ["_id", "title", "text"] for row in corpus)
    assert all(list(row) == ["_id", "text"] for row in queries)
    assert len({r["_id"] for r in corpus}) == len(corpus)
    assert len({r["_id"] for r in queries}) == len(queries)
    assert len({r["text"].lower() for r in queries}) == len(queries)  # no repeated question
    for row in corpus:
        assert row["title"].strip() and 30 <= len(row["text"].split()) <= 80, row
        assert row["text"][0].isupper() and row["text"].endswith("."), row
    assert all("{" not in r["text"] and "}" not in r["text"] for r in corpus + queries)


def test_qrels_point_at_existing_ids_and_splits_are_disjoint(sample):
    doc_ids = {r["_id"] for r in sample["corpus"]}
    query_ids = {r["_id"] for r in sample["queries"]}
    split_queries = {}
    for split, rows in sample["qrels"].items():
        assert len(set((q, d) for q, d, _ in rows)) == len(rows), f"{split}: duplicate pairs"
        assert all(score > 0 for _, _, score in rows)
        assert {q for q, _, _ in rows} <= query_ids, f"{split}: unknown query ids"
        assert {d for _, d, _ in rows} <= doc_ids, f"{split}: unknown corpus ids"
        per_query = defaultdict(int)
        for q, _, _ in rows:
            per_query[q] += 1
        assert set(per_query.values()) <= {1, 2}, f"{split}: a query with >2 relevant passages"
        split_queries[split] = set(per_query)
    assert not split_queries["train"] & split_queries["test"]
    assert split_queries["train"] | split_queries["test"] == query_ids  # every query is judged
    assert 200 <= len(split_queries["train"]) <= 300
    assert 60 <= len(split_queries["test"]) <= 100


def test_generator_reproduces_the_committed_files(tmp_path):
    script = REPO / "scripts" / "make_sample.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in DATA_FILES:
        committed = (resource_path("sample") / name).read_bytes()
        assert (tmp_path / name).read_bytes() == committed, f"{name} differs from the generator"


def test_word_overlap_alone_does_not_find_the_answer(sample):
    """Queries paraphrase: ranking by shared words puts a relevant passage alone on top for
    only a minority of queries, while each query still names or describes its answer."""
    corpus = {r["_id"]: words(f"{r['title']} {r['text']}") for r in sample["corpus"]}
    relevant = defaultdict(set)
    for rows in sample["qrels"].values():
        for q, d, _ in rows:
            relevant[q].add(d)
    solved = 0
    for row in sample["queries"]:
        overlap = {d: len(words(row["text"]) & toks) for d, toks in corpus.items()}
        best = max(overlap.values())
        top = [d for d, n in overlap.items() if n == best]
        solved += len(top) == 1 and top[0] in relevant[row["_id"]]
    assert solved / len(sample["queries"]) < 0.4


def test_minilm_ranks_test_positives_well(sample, minilm_path):
    """The real teacher on the test split, against every passage about the same entities
    (the hardest distractors: same name, other attributes) plus every other positive."""
    import ir_measures
    import torch
    from ir_measures import RR, nDCG
    from transformers import AutoModel, AutoTokenizer

    qrels = sample["qrels"]["test"]
    positives = {d for _, d, _ in qrels}
    titles = {r["title"] for r in sample["corpus"] if r["_id"] in positives}
    docs = [r for r in sample["corpus"] if r["title"] in titles]
    qids = sorted({q for q, _, _ in qrels})
    text = {r["_id"]: r["text"] for r in sample["queries"]}

    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()

    @torch.inference_mode()
    def encode(texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), 64):
            batch = tok(
                texts[i : i + 64],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state  # [B, T, D]
            mask = batch["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(out)

    scores = (
        encode([text[q] for q in qids]) @ encode([f"{r['title']} {r['text']}" for r in docs]).T
    )  # [Q, N]
    run = [
        ir_measures.ScoredDoc(q, docs[j]["_id"], float(scores[i, j]))
        for i, q in enumerate(qids)
        for j in scores[i].topk(10).indices.tolist()
    ]
    judged = [ir_measures.Qrel(q, d, s) for q, d, s in qrels]
    result = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10], judged, run)
    assert len(docs) >= 200 and len(docs) / len(qids) > 3  # a real ranking problem
    assert result[nDCG @ 10] > 0.5, result
    assert result[RR @ 10] > 0.45, result
