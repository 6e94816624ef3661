"""Re-rank a first-stage run with any model: each query's top-`depth` documents re-scored.

This is how a ColBERT or cross-encoder teacher is evaluated (it cannot index a corpus) and how a
user checks a teacher before distilling it. Texts come from the corpus store, scores from the
model's one scoring interface (`Retriever.scores`), so every model kind works the same way.
"""

from __future__ import annotations

import torch

from lead_ray.data.store import CorpusStore
from lead_ray.models.base import Retriever

Run = dict[str, list[tuple[str, float]]]


@torch.inference_mode()
def rerank(
    model: Retriever,
    run: Run,
    queries: dict[str, str],
    store: CorpusStore,
    depth: int,
    title: bool = True,
) -> Run:
    """Re-score each query's top-`depth` documents with `model`; best first. Documents of the run
    that the corpus lacks are an error (the run belongs to another corpus)."""
    out = {}
    for qid, ranked in run.items():
        doc_ids = [d for d, _ in ranked[:depth]]
        rows = store.idx_of(doc_ids)
        if (rows < 0).any():
            missing = [d for d, r in zip(doc_ids, rows, strict=True) if r < 0][:3]
            raise ValueError(f"query {qid}: the run names documents not in the corpus: {missing}")
        scores = model.scores([queries[qid]], store.texts(rows, title)).final[0]  # [depth]
        order = torch.argsort(scores.float(), descending=True).tolist()
        out[qid] = [(doc_ids[i], float(scores[i])) for i in order]
    return out
