"""Run files: ranked results per query, written and read as TREC, MS MARCO or Tevatron text.

A `Run` is `{query_id: [(doc_id, score), ...]}`, best first. Formats (space or tab separated):
- TREC: `qid Q0 docid rank score tag` (6 columns);
- MS MARCO: `qid pid rank` (3 columns, ranks 1..n per query);
- Tevatron: `qid pid score` (3 columns; anything that is not ranks 1, 2, ..., n is a score).
Reading ranks queries the way trec_eval does: by score, ties by doc id, descending. A rank-only
file gets score = -rank. Writes are atomic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from lead_ray.data.errors import DataError
from lead_ray.data.textio import existing_file, iter_columns
from lead_ray.storage import atomic_file

Run = dict[str, list[tuple[str, float]]]
_SPACE = re.compile(r"\s")


def _check_token(value: str, what: str) -> None:
    if not value or _SPACE.search(value):
        raise ValueError(f"{what} {value!r} cannot be written to a run file (empty or whitespace)")


def write_trec_run(path: str | os.PathLike, run: Run, tag: str = "lead") -> int:
    """`qid Q0 docid rank score tag` lines, ranks from list order; returns the line count.

    Scores are written exactly (shortest round-trip text), so a re-read run evaluates the same.
    """
    _check_token(tag, "tag")

    def lines() -> Iterator[str]:
        for qid, ranked in run.items():
            for rank, (doc_id, score) in enumerate(ranked, 1):
                yield f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n"

    return _write(path, run, lines())


def write_msmarco_run(path: str | os.PathLike, run: Run) -> int:
    """`qid<TAB>pid<TAB>rank` lines (the MS MARCO leaderboard format); returns the line count."""

    def lines() -> Iterator[str]:
        for qid, ranked in run.items():
            for rank, (doc_id, _) in enumerate(ranked, 1):
                yield f"{qid}\t{doc_id}\t{rank}\n"

    return _write(path, run, lines())


def _write(path: str | os.PathLike, run: Run, lines: Iterator[str]) -> int:
    for qid, ranked in run.items():  # validate everything before the file is opened
        _check_token(str(qid), "query id")
        for doc_id, _ in ranked:
            _check_token(str(doc_id), "doc id")
    count = 0
    with atomic_file(path, "w") as fh:
        for line in lines:
            fh.write(line)
            count += 1
    return count


def trec_order(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """`ranked` in trec_eval's order: score descending, ties by doc id descending."""
    return sorted(ranked, key=lambda pair: (pair[1], pair[0]), reverse=True)


def read_run(path: str | os.PathLike) -> Run:
    """A TREC, MS MARCO or Tevatron run file as a `Run` (each query in trec_eval order).

    Raises:
        DataError: wrong column count, a non-numeric score or rank, or a doc listed twice for
            one query (trec_eval rejects that too).
    """
    p = existing_file(path)
    values: dict[str, dict[str, tuple[str, int]]] = {}  # qid -> doc -> (score or rank text, line)
    columns = 0
    layouts = {6: "qid Q0 docid rank score tag", 3: "qid docid rank|score"}
    for n, fields, _ in iter_columns(p, layouts):
        columns = len(fields)
        qid, doc_id, value = (fields[0], fields[2], fields[4]) if columns == 6 else fields
        docs = values.setdefault(qid, {})
        if doc_id in docs:
            raise DataError(
                p,
                f"doc {doc_id!r} listed twice for query {qid!r} (first at line {docs[doc_id][1]})",
                n,
                "docid",
            )
        docs[doc_id] = (value, n)
    if not values:
        raise DataError(p, "no results")
    ranks = columns == 3 and all(_is_ranks(docs) for docs in values.values())
    run: Run = {}
    for qid, docs in values.items():
        ranked = []
        for doc_id, (value, n) in docs.items():
            try:
                score = -float(int(value)) if ranks else float(value)
            except ValueError:
                raise DataError(p, f"expected a number, got {value!r}", n, "score") from None
            ranked.append((doc_id, score))
        run[qid] = trec_order(ranked)
    return run


def _is_ranks(docs: dict[str, tuple[str, int]]) -> bool:
    """Whether a query's third column reads 1, 2, ..., n in file order."""
    return all(value == str(i) for i, (value, _) in enumerate(docs.values(), 1))


def run_from_path(run: Run | str | os.PathLike) -> Run:
    return run if isinstance(run, dict) else read_run(Path(run))
