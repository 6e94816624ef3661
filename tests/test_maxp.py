"""MaxP through the id map: a document split into windows is found through any of its windows,
scored by its best one, and listed once; FirstP sees only the first window.

Known answer with the real all-MiniLM-L6-v2: the only passage that answers the query sits in
the third 32-token window of its document, behind two windows of unrelated text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lead_ray.config import Config
from lead_ray.stages.dispatch import run_stage
from lead_ray.stages.pipeline import run_pipeline
from lead_ray.stages.run import Run

REPO = Path(__file__).resolve().parents[1]
FILLER = {
    "cooking": "Slow cooked stews need a heavy pot, a low flame and patience. Brown the onions "
    "first, add the stock a cup at a time, and stir now and then so nothing sticks. A bay leaf "
    "and a little thyme are enough; taste and add salt near the end.",
    "gardens": "Tomato seedlings go outside once the nights stay warm. Water them at the root in "
    "the morning, tie the stems to canes as they grow, and pinch out the side shoots every week "
    "so the plant puts its strength into the fruit.",
    "trains": "The night train leaves the capital at ten and reaches the coast by morning. "
    "Sleeping cars have two berths each, breakfast is served in the dining car, and tickets bought "
    "early cost half the price of a seat on the day.",
    "chess": "In the opening, develop the knights before the bishops, castle early and keep the "
    "queen at home until the minor pieces are out. Control of the centre decides most games "
    "between players of equal strength.",
}
# 60 tokens of stew (two full 30-token windows at max_length 32), then the answer (22 tokens)
LEAD_IN = FILLER["cooking"] + " Serve hot."
ANSWER = (
    "Mount Pinatubo's 1991 eruption cooled the whole planet by about half a degree for two years."
)
QUERY = "How much did the Mount Pinatubo eruption cool the planet?"


def corpus() -> list[dict]:
    docs = [{"_id": "answer", "title": "", "text": f"{LEAD_IN} {ANSWER} {FILLER['trains']}"}]
    for i, (topic, text) in enumerate(FILLER.items()):
        other = list(FILLER.values())[(i + 1) % len(FILLER)]
        docs.append({"_id": f"{topic}-{i}", "title": "", "text": f"{text} {other} {text}"})
    return docs


def config(tmp_path: Path, doc_mode: str) -> Config:
    data = tmp_path / "data"
    if not data.is_dir():
        (data / "qrels").mkdir(parents=True)
        (data / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus()))
        (data / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": QUERY}) + "\n")
        (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tanswer\t1\n")
    return Config.from_dict({
        "data": {"beir": str(data)},
        "teacher": {"model": "all-MiniLM-L6-v2"},
        "encode": {"doc_mode": doc_mode, "max_length": 32, "maxp_passages": 4, "batch_size": 8,
                   "shard_rows": 3, "model": "all-MiniLM-L6-v2"},
        "search": {"k": 5},
        "evaluate": {"metrics": ["nDCG@10", "RR@10"]},
    })  # fmt: skip


def test_the_answer_sits_in_the_third_window(tmp_path):
    from lead_ray.corpus.encode import split_passages
    from lead_ray.models.backbone import load_tokenizer

    tok = load_tokenizer("all-MiniLM-L6-v2")
    ids, owner, window = split_passages(tok, [corpus()[0]["text"]], 32, maxp=True, max_passages=4)
    texts = [tok.decode(x, skip_special_tokens=True) for x in ids]
    assert [i for i, t in enumerate(texts) if "pinatubo" in t] == [2]


@pytest.mark.parametrize("doc_mode", ["maxp", "firstp"])
def test_maxp_finds_the_document_through_its_third_window_and_firstp_does_not(tmp_path, doc_mode):
    run = Run(config(tmp_path, doc_mode), tmp_path / doc_mode, progress=False)
    for name in ("encode", "index", "search"):
        run_stage(run, name, "all-MiniLM-L6-v2", "test")
    ranked = [ln.split()[2] for ln in run.layout.run_file("all-MiniLM-L6-v2", "test").open()]
    assert len(ranked) == len(set(ranked)) == 5  # k distinct documents, none twice
    manifest = json.loads((run.layout.embeddings("all-MiniLM-L6-v2") / "manifest.json").read_text())
    if doc_mode == "maxp":
        assert manifest["rows"] > len(corpus())  # several windows per document were encoded
        assert ranked[0] == "answer"
    else:
        assert manifest["rows"] == len(corpus())
        assert ranked[0] != "answer"  # its first window is about stews


def test_tiny_pipeline_with_maxp_completes_and_scores(tmp_path):
    from lead_ray.config import load_config

    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "encode.doc_mode=maxp", "encode.maxp_passages=3", "encode.max_length=16",
        "train.steps=3"])  # fmt: skip
    headline = run_pipeline(Run(cfg, tmp_path, progress=False))
    for system in ("student", "student-init", "teacher"):
        assert 0 <= headline[system]["nDCG@10"] <= 1
    for line in (tmp_path / "runs" / "student" / "test.trec").read_text().splitlines()[:20]:
        assert line.split()[2].startswith("d")  # document ids, never window ids
    emb = json.loads((tmp_path / "embeddings" / "student" / "manifest.json").read_text())
    assert emb["maxp"] and emb["rows"] > 200
