"""Hard-negative mining: retrieve top-k per training query with a dual encoder, drop every
positive, keep the next ones as negatives (optionally with the teacher's scores cached).

Positives are compared as strings, all of them (the LEAD code compared a string id to an int and
checked only the first positive, so positives leaked into the negatives; see docs/method.md).
Output: `mine/examples.jsonl` + `mine/manifest.json` (written last).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from lead_ray.config import Config
from lead_ray.data.examples import Example, write_examples
from lead_ray.data.prepare import DataPaths, split_qrels
from lead_ray.data.queries import read_queries
from lead_ray.data.store import CorpusStore
from lead_ray.modeling import CrossEncoder, DualEncoder, Model, load_model
from lead_ray.modeling.tokenize import passage_text
from lead_ray.storage import is_complete, read_manifest, write_manifest

log = logging.getLogger(__name__)


def select_negatives(ranked: list[str], positives: set[str], skip: int, keep: int) -> list[str]:
    """The `keep` best-ranked non-positives after skipping the first `skip` of them."""
    negatives = [d for d in ranked if d not in positives]
    return negatives[skip : skip + keep]


@torch.inference_mode()
def teacher_scores(teacher: Model, query: str, passages: list[str]) -> list[float]:
    """The teacher's final score of each passage for one query."""
    if isinstance(teacher, CrossEncoder):
        return teacher.score_pairs([query], passages).final[0].float().tolist()
    q = teacher.encode_queries([query])
    p = teacher.encode_passages(passages)
    return teacher.score(q, p).final[0].float().tolist()


def mine(cfg: Config, out_dir: str | Path, store: CorpusStore, paths: DataPaths, model_folder: str,
         teacher_folder: str | None = None, progress: bool = True, emb_dir: str | Path | None = None) -> Path:
    """Mine negatives for the training split with the dual encoder saved in `model_folder`.

    Args:
        teacher_folder: when `cfg.mine.teacher_scores`, the model whose final scores are cached.
        emb_dir: where the corpus embeddings go (default `out_dir/embeddings`); the pipeline
            shares them with the evaluation of the same model.
    Returns:
        The examples file (`out_dir/examples.jsonl`).
    """
    from lead_ray.encoding import encode_corpus, encode_queries
    from lead_ray.search import exact_search

    out = Path(out_dir)
    examples_file = out / "examples.jsonl"
    if is_complete(out):
        return examples_file
    model = load_model(model_folder)
    if not isinstance(model, DualEncoder):
        raise ValueError(f"mining needs a dual encoder; {model_folder} is a {model.kind}")
    emb_dir = Path(emb_dir) if emb_dir is not None else out / "embeddings"
    teacher = load_model(teacher_folder) if cfg.mine.teacher_scores and teacher_folder else None
    if teacher is not None:
        teacher.eval()
    encode_corpus(cfg, model_folder, store, emb_dir, progress=progress)
    qrels = split_qrels(cfg.data, paths, cfg.data.train_split, cfg.train.seed)
    queries = read_queries(paths.queries)
    qids = [q for q in sorted(qrels) if q in queries]
    model.eval()
    q_emb = encode_queries(model, [queries[q] for q in qids], batch_size=cfg.encode.batch_size)
    depth = cfg.mine.k + max((len(v) for v in qrels.values()), default=0)
    _, doc_idx = exact_search(emb_dir, q_emb, min(depth, len(store)))  # [Q, depth]
    examples, dropped = [], 0
    for qid, row in zip(qids, doc_idx):
        positives = {d for d, grade in qrels[qid].items() if grade > 0}
        ranked = store.doc_ids.take(row[row >= 0][: cfg.mine.k]).to_pylist()
        negatives = select_negatives(ranked, positives, cfg.mine.skip, cfg.mine.keep)
        dropped += sum(d in positives for d in ranked)
        pos = sorted(positives)
        if not pos:
            continue
        scores = None
        if cfg.mine.teacher_scores and teacher is not None:
            texts = _texts(store, [pos[0], *negatives], cfg.data.title)
            scores = teacher_scores(teacher, queries[qid], texts)
        examples.append(Example(qid, None, pos, negatives, scores))
    write_examples(examples_file, examples)
    write_manifest(out, {"kind": "mine", "complete": True, "examples": len(examples),
                         "model": model_folder, "k": cfg.mine.k, "keep": cfg.mine.keep,
                         "skip": cfg.mine.skip, "positives_dropped": dropped,
                         "embeddings": read_manifest(emb_dir)})
    log.info("mined %d examples (%d retrieved positives dropped)", len(examples), dropped)
    return examples_file


def _texts(store: CorpusStore, doc_ids: list[str], title: bool) -> list[str]:
    titles, texts = store.get(np.asarray(store.idx_of(doc_ids)))
    return [passage_text(t if title else None, x) for t, x in zip(titles, texts)]
