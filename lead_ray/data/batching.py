"""Training batches as a pure function of (seed, step, rank): resumable and identical everywhere.

Global step s consumes examples s*G ... s*G + G - 1 (G = batch size x workers) of an endless
stream of epochs, each a seeded permutation; worker r takes its own slice of B. Each query
brings its first positive and n negatives drawn uniformly from its mined negatives (repeated
when it has fewer, as in the LEAD code) or, when it has none, from the whole corpus without its
positives. Nothing depends on iterator state, so a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lead_ray.data.examples import Example
from lead_ray.data.store import CorpusStore


@dataclass
class TrainBatch:
    query_ids: list[str]  # B
    queries: list[str]  # B
    passage_ids: list[str]  # B * per_query, query-major, each query's positive first
    passages: list[str]  # B * per_query
    per_query: int  # 1 + negatives

    def __len__(self) -> int:
        return len(self.query_ids)


class TrainingData:
    """Examples + query texts + a corpus store -> deterministic batches."""

    def __init__(
        self,
        examples: Sequence[Example],
        queries: dict[str, str],
        corpus: CorpusStore,
        *,
        seed: int,
        negatives: int,
        title: bool = True,
    ):
        if not examples:
            raise ValueError("no training examples (every query lacked a positive in the corpus?)")
        self.examples = list(examples)
        self.queries = queries
        self.corpus = corpus
        self.seed = seed
        self.negatives = negatives
        self.title = title
        self._epoch_cache: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._epoch_cache:
            self._epoch_cache = {
                epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            }
        return self._epoch_cache[epoch]

    def _negatives(self, ex: Example, step: int, slot: int) -> list[str]:
        """n negative ids: drawn from the example's mined negatives, else from the corpus."""
        if self.negatives == 0:
            return []
        rng = np.random.default_rng([self.seed, 1, step, slot])
        if ex.negative_ids:
            pool = ex.negative_ids
            chosen = rng.choice(
                len(pool), self.negatives, replace=len(pool) < self.negatives
            ).tolist()
            return [pool[i] for i in chosen]
        positives = set(ex.positive_ids)
        out: list[str] = []
        while len(out) < self.negatives:  # random corpus negatives, never a positive
            idx = rng.integers(0, len(self.corpus), self.negatives * 2)
            out += [d for d in self.corpus.doc_ids.take(idx).to_pylist() if d not in positives]
        return out[: self.negatives]

    def step_batches(
        self, step: int, batch_size: int, accum: int = 1, rank: int = 0, world: int = 1
    ) -> list[TrainBatch]:
        """Worker `rank`'s `accum` micro-batches of optimizer step `step` (0-based): micro-batch
        `step * accum + a` for a < accum, so one micro-batch per step reads as `batch(step)`."""
        return [self.batch(step * accum + a, batch_size, rank, world) for a in range(accum)]

    def batch(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> TrainBatch:
        """Worker `rank`'s share of global step `step` (0-based)."""
        n = len(self.examples)
        first = step * batch_size * world
        query_ids, queries, passage_ids = [], [], []
        for pos in range(first + rank * batch_size, first + (rank + 1) * batch_size):
            ex = self.examples[self._order(pos // n)[pos % n]]
            query_ids.append(ex.query_id)
            queries.append(self.query_text(ex))
            passage_ids += [ex.positive_ids[0], *self._negatives(ex, step, pos - first)]
        return TrainBatch(
            query_ids, queries, passage_ids, self._texts(passage_ids), 1 + self.negatives
        )

    def query_text(self, ex: Example) -> str:
        return ex.query if ex.query is not None else self.queries[ex.query_id]

    def passage_pool(self) -> list[str] | None:
        """Every passage id a batch can draw (first positives and mined negatives), or None when
        negatives come from the whole corpus (an example without mined negatives)."""
        if self.negatives and not all(ex.negative_ids for ex in self.examples):
            return None
        ids = [ex.positive_ids[0] for ex in self.examples]
        if self.negatives:
            ids += [d for ex in self.examples for d in ex.negative_ids]
        return list(dict.fromkeys(ids))

    def _texts(self, doc_ids: list[str]) -> list[str]:
        idx = self.corpus.idx_of(doc_ids)
        if (idx < 0).any():
            missing = [d for d, i in zip(doc_ids, idx, strict=True) if i < 0][:3]
            raise ValueError(f"training examples name passages not in the corpus: {missing}")
        return self.corpus.texts(idx, self.title)
