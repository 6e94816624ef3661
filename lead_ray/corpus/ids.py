"""One id map from index ids to documents, for FirstP and MaxP alike.

The FAISS id of a vector (`doc_idx` in the embedding shards) is `row * windows + window`: `row`
is the document's row in the corpus store, `window` its passage number (MaxP splits a document
into up to `windows` windows; FirstP has one, so the id is the row itself). Search, mining,
re-ranking and evaluation go through `IdMap` to turn index results into documents: the best
window's score per document, k distinct documents, user doc ids. Texts come from the store
(`CorpusStore.texts`). Nothing here knows models, FAISS or Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Run = dict[str, list[tuple[str, float]]]


class IdMap:
    """Index ids <-> store rows <-> doc ids.

    Args:
        doc_ids: every doc id in store row order (`CorpusStore.doc_ids`, a pyarrow array).
        windows: vectors per document (`encode.maxp_passages` for MaxP, 1 for FirstP).
    """

    def __init__(self, doc_ids, windows: int = 1):
        if windows < 1:
            raise ValueError(f"windows must be >= 1, got {windows}")
        self.doc_ids, self.windows = doc_ids, int(windows)

    @classmethod
    def for_embeddings(cls, doc_ids, manifest: dict[str, Any]) -> IdMap:
        """The map of an embeddings folder, from its manifest (`maxp`, `maxp_passages`)."""
        return cls(doc_ids, int(manifest.get("maxp_passages") or 1) if manifest.get("maxp") else 1)

    def vector_ids(self, rows: np.ndarray, window: np.ndarray | int = 0) -> np.ndarray:
        """FAISS ids of (row, window) pairs. [n] -> [n] int64

        >>> IdMap(["a", "b"], windows=4).vector_ids(np.array([0, 1]), np.array([2, 3]))
        array([2, 7])
        """
        return np.asarray(rows, dtype=np.int64) * self.windows + window

    def rows(self, vector_ids: np.ndarray) -> np.ndarray:
        """Store rows of FAISS ids (any shape; -1 stays -1).

        >>> IdMap(["a", "b"], windows=4).rows(np.array([2, 7, -1]))
        array([ 0,  1, -1])
        """
        ids = np.asarray(vector_ids, dtype=np.int64)
        return np.where(ids >= 0, ids // self.windows, -1)

    def search_depth(self, k: int) -> int:
        """How many vectors to fetch so that k distinct documents are among them."""
        return k * self.windows

    def documents(
        self, scores: np.ndarray, vector_ids: np.ndarray, k: int, metric: str = "ip"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query the first k distinct documents of a best-first vector ranking, each scored
        by its best window (MaxP). FirstP results pass through unchanged (cut to k).

        Args:
            scores, vector_ids: [Q, K] best first (ip: highest first; l2: lowest first).
        Returns:
            scores [Q, k] and store rows [Q, k] (-1 / -inf or +inf where fewer than k exist).

        >>> s = np.array([[9., 8., 7., 1.]]); ids = np.array([[5, 4, 0, 9]])  # docs 2, 2, 0, 4
        >>> IdMap(list("abcde"), windows=2).documents(s, ids, 2)
        (array([[9., 7.]]), array([[2, 0]]))
        """
        rows = self.rows(vector_ids)  # [Q, K]
        if self.windows == 1:
            return scores[:, :k], rows[:, :k]
        out_s = np.full((len(rows), k), -np.inf if metric == "ip" else np.inf, dtype=scores.dtype)
        out_r = np.full((len(rows), k), -1, dtype=np.int64)
        for q, (row, score) in enumerate(zip(rows, scores, strict=True)):
            valid = row >= 0
            # the first occurrence of a document in a best-first list is its best window
            _, first = np.unique(row[valid], return_index=True)
            keep = np.sort(first)[:k]
            out_r[q, : len(keep)] = row[valid][keep]
            out_s[q, : len(keep)] = score[valid][keep]
        return out_s, out_r

    def doc_id_array(self, rows: np.ndarray) -> np.ndarray:
        """User doc ids of store rows (any shape) as an object array; rows must be valid."""
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        if len(flat) and (flat.min() < 0 or flat.max() >= len(self.doc_ids)):
            raise KeyError(f"row out of range [0, {len(self.doc_ids)})")
        import pyarrow as pa

        ids = (
            self.doc_ids
            if isinstance(self.doc_ids, pa.Array)
            else pa.array(list(self.doc_ids), pa.string())
        )
        return ids.take(pa.array(flat)).to_numpy(zero_copy_only=False).reshape(rows.shape)

    def to_run(self, query_ids: Sequence[str], scores: np.ndarray, rows: np.ndarray) -> Run:
        """`{query_id: [(doc_id, score), ...]}` best first, from document rows [Q, k] (-1: none)."""
        if len(query_ids) != len(rows):
            raise ValueError(f"{len(query_ids)} query ids for {len(rows)} result rows")
        valid = rows >= 0
        names = np.empty(rows.shape, dtype=object)
        names[valid] = self.doc_id_array(rows[valid])
        return {
            str(qid): [(names[i, j], float(scores[i, j])) for j in np.flatnonzero(valid[i])]
            for i, qid in enumerate(query_ids)
        }
