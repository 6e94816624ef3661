"""Why the SciFact configs score with raw dot products: the score spread of the packaged
all-MiniLM-L6-v2 over one training batch (8 mined SciFact examples, 1 positive + 3 hard
negatives each, 32 in-batch candidates per query), with L2-normalised vectors (cosine, as the
model ships) and without. Reported in docs/results.md.

    .venv/bin/python benchmarks/score_spread.py   # after benchmarks/quality.py (its mined examples)
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import torch

from lead_ray.config import TeacherConfig
from lead_ray.data.examples import read_examples
from lead_ray.models.build import build_teacher


def read_texts(beir: Path) -> tuple[dict[str, str], dict[str, str]]:
    with open(beir / "queries.jsonl", encoding="utf-8") as fh:
        queries = {r["_id"]: r["text"] for r in map(json.loads, fh)}
    with open(beir / "corpus.jsonl", encoding="utf-8") as fh:
        docs = {r["_id"]: f"{r.get('title', '')} {r['text']}".strip() for r in map(json.loads, fh)}
    return queries, docs


def spread(scores: torch.Tensor, positives: torch.Tensor) -> dict[str, float]:
    """scores [Q, C]; positives [Q] column of each query's positive."""
    prob = scores.softmax(-1)  # temperature 1, as in the LEAD losses
    entropy = -(prob * prob.clamp_min(1e-12).log()).sum(-1)
    return {
        "score std": float(scores.std(-1).mean()),
        "score range": float((scores.max(-1).values - scores.min(-1).values).mean()),
        "softmax entropy": float(entropy.mean()),
        "uniform entropy": math.log(scores.shape[1]),
        "p(positive)": float(prob[torch.arange(len(positives)), positives].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=Path, default=Path("runs/quality/mine/examples.jsonl"))
    p.add_argument("--beir", type=Path, default=Path("../shared/data/scifact"))
    args = p.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    batch = random.sample(list(read_examples(args.examples)), 8)
    queries, docs = read_texts(args.beir)
    pids = [pid for ex in batch for pid in [ex.positive_ids[0], *ex.negative_ids[:3]]]
    for normalize in (True, False):
        model = build_teacher(
            TeacherConfig(
                model="all-MiniLM-L6-v2",
                pooling="mean",
                normalize=normalize,
                max_query_length=32,
                max_doc_length=128,
            )
        ).eval()
        with torch.no_grad():
            q = model.encode([queries[ex.query_id] for ex in batch], "query").final  # [8, D]
            d = model.encode([docs[pid] for pid in pids], "passage").final  # [32, D]
        stats = spread(q @ d.T, torch.arange(len(batch)) * 4)
        print(f"normalize={normalize}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
