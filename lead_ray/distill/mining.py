"""Hard-negative mining: retrieve top-k per training query with a dual encoder, drop every
positive, keep the next ones as negatives.

Positives are compared as strings, all of them (the LEAD code compared a string id to an int and
checked only the first positive, so positives leaked into the negatives; see docs/method.md).
The corpus embeddings are the mining model's (`RunLayout.embeddings`), shared with its
evaluation. Output: `mine/examples.jsonl`, `mine/dev.trec` (with a dev split: the dev queries'
candidates for dev evaluation) + `mine/manifest.json` (written last).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lead_ray.config import Config
from lead_ray.data.examples import Example, write_examples
from lead_ray.data.store import CorpusStore
from lead_ray.storage import is_complete, read_manifest, write_manifest

log = logging.getLogger(__name__)

DEV_CANDIDATES = "dev.trec"  # the dev queries' first-stage candidates, beside examples.jsonl


def select_negatives(ranked: list[str], positives: set[str], skip: int, keep: int) -> list[str]:
    """The `keep` best-ranked non-positives after skipping the first `skip` of them."""
    negatives = [d for d in ranked if d not in positives]
    return negatives[skip : skip + keep]


def mine(
    cfg: Config,
    out: Path,
    store: CorpusStore,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    model_folder: str | Path,
    emb_dir: Path,
    progress: bool = True,
    dev_qrels: dict[str, dict[str, int]] | None = None,
) -> Path:
    """Mine negatives for the training queries (`qrels`) with the dual encoder in `model_folder`.

    Args:
        emb_dir: the model's corpus embeddings (encoded here unless complete).
        dev_qrels: the dev split's judgements, when the run has one: the same model's top
            `train.eval_depth` documents per dev query go to `out/dev.trec`, the candidates the
            student re-ranks during training (dev evaluation).
    Returns:
        The examples file (`out/examples.jsonl`); a complete `out` is returned as it is.
    """
    from lead_ray.corpus.embeddings import read_embeddings_manifest
    from lead_ray.corpus.encode import encode_corpus, encode_queries, load_dual_encoder
    from lead_ray.corpus.ids import IdMap
    from lead_ray.corpus.search import exact_search
    from lead_ray.data.runs import write_trec_run

    examples_file = Path(out) / "examples.jsonl"
    if is_complete(out):
        return examples_file
    model = load_dual_encoder(str(model_folder))
    encode_corpus(cfg, str(model_folder), store, emb_dir, progress=progress)
    ids = IdMap.for_embeddings(store.doc_ids, read_embeddings_manifest(emb_dir))

    def top(qids: list[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's `depth` best distinct documents: scores and store rows [Q, depth]."""
        q_emb = encode_queries(model, [queries[q] for q in qids], batch_size=cfg.encode.batch_size)
        depth = min(depth, len(store))
        scores, vectors = exact_search(emb_dir, q_emb, ids.search_depth(depth))  # [Q, depth * W]
        return ids.documents(scores, vectors, depth)

    qids = [q for q in sorted(qrels) if q in queries]
    _, rows = top(qids, cfg.mine.k + max((len(v) for v in qrels.values()), default=0))
    examples, dropped = [], 0
    for qid, row in zip(qids, rows, strict=True):
        positives = {d for d, grade in qrels[qid].items() if grade > 0}
        ranked = ids.doc_id_array(row[row >= 0][: cfg.mine.k]).tolist()
        dropped += sum(d in positives for d in ranked)
        if positives:
            negatives = select_negatives(ranked, positives, cfg.mine.skip, cfg.mine.keep)
            examples.append(Example(qid, None, sorted(positives), negatives))
    write_examples(examples_file, examples)
    dev_ids = [q for q in sorted(dev_qrels or {}) if q in queries]
    if dev_ids:
        dev_run = ids.to_run(dev_ids, *top(dev_ids, cfg.train.eval_depth))
        write_trec_run(Path(out) / DEV_CANDIDATES, dev_run, tag="mine")
    write_manifest(
        out,
        {
            "kind": "mine",
            "complete": True,
            "examples": len(examples),
            "dev_queries": len(dev_ids),
            "model": str(model_folder),
            "k": cfg.mine.k,
            "keep": cfg.mine.keep,
            "skip": cfg.mine.skip,
            "positives_dropped": dropped,
            "embeddings": read_manifest(emb_dir),
        },
    )
    log.info("mined %d examples (%d retrieved positives dropped)", len(examples), dropped)
    return examples_file
