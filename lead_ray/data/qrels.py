"""Read relevance judgements (qrels) into `{query_id: {doc_id: grade}}`.

Formats, told apart line by line (tabs or spaces):
- BEIR: `query-id corpus-id score` (3 columns, header line);
- TREC: `qid iter docid rel` (4 columns; MS MARCO `qrels.*.tsv` and NIST qrels);
- `qid docid rel` (3 columns, no header).
A first line whose grade is not a number is a header. A `.json` file holding
`{qid: {docid: grade}}` is read too. The same (qid, docid) judged twice with different grades
is an error; `check_qrels` finds judgements of documents the corpus lacks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lead_ray.data.errors import DataError
from lead_ray.data.textio import existing_file, file_format, iter_columns

if TYPE_CHECKING:
    from lead_ray.data.store import CorpusStore

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]


def _grade(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def iter_qrels(path: str | os.PathLike) -> Iterator[tuple[int, str, str, int]]:
    """(line, query_id, doc_id, grade) of every judgement in a TSV / TREC qrels file."""
    p = existing_file(path)
    for n, fields, first in iter_columns(
        p, {3: "query-id corpus-id score", 4: "qid iter docid rel"}
    ):
        if first and not _is_number(fields[-1]):
            continue  # a header line
        grade = _grade(fields[-1])
        if grade is None:
            raise DataError(p, f"expected an integer grade, got {fields[-1]!r}", n, "relevance")
        yield n, fields[0], fields[-2], grade


def read_qrels(path: str | os.PathLike) -> Qrels:
    """`{query_id: {doc_id: grade}}` of a qrels file (grades kept, including 0 and negatives).

    Raises:
        DataError: a malformed line, conflicting grades for one pair, or no judgements.
    """
    p = existing_file(path)
    if file_format(p) == "json":
        return _read_json(p)
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    for n, qid, doc_id, grade in iter_qrels(p):
        docs = qrels.setdefault(qid, {})
        if doc_id in docs and docs[doc_id] != grade:
            raise DataError(
                p,
                f"({qid}, {doc_id}) judged {docs[doc_id]} at line {lines[qid, doc_id]} "
                f"and {grade} here",
                n,
                "relevance",
            )
        if doc_id not in docs:
            docs[doc_id], lines[qid, doc_id] = grade, n
    if not qrels:
        raise DataError(p, "no judgements")
    return qrels


def _read_json(path: Path) -> Qrels:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not a JSON qrels file ({err})") from None
    if not isinstance(data, dict) or not data:
        raise DataError(path, "expected a non-empty JSON object {query_id: {doc_id: grade}}")
    qrels: Qrels = {}
    for qid, docs in data.items():
        if not isinstance(docs, dict):
            raise DataError(path, f"query {qid!r}: expected an object {{doc_id: grade}}")
        for doc_id, grade in docs.items():
            g = (
                _grade(str(grade))
                if isinstance(grade, (int, float)) and not isinstance(grade, bool)
                else None
            )
            if g is None:
                raise DataError(
                    path, f"query {qid!r}, doc {doc_id!r}: expected an integer grade, got {grade!r}"
                )
            qrels.setdefault(str(qid), {})[str(doc_id)] = g
    return qrels


def check_qrels(
    qrels: Qrels | str | os.PathLike, store: CorpusStore, *, strict: bool = False
) -> tuple[Qrels, int]:
    """Qrels without judgements of documents missing from `store`, and how many were dropped.

    Queries left with no judgement are dropped too. A partial corpus (e.g. a judged pool) is
    expected to miss some, so by default they are counted and logged.

    Args:
        qrels: qrels, or a qrels file (then a strict error names its line).
        strict: raise `DataError` naming the first unknown document instead of dropping.
    """
    path = None
    if not isinstance(qrels, dict):
        path, qrels = qrels, read_qrels(qrels)
    doc_ids = sorted({d for docs in qrels.values() for d in docs})
    unknown = {d for d, i in zip(doc_ids, store.idx_of(doc_ids), strict=True) if i < 0}
    dropped = sum(d in unknown for docs in qrels.values() for d in docs)
    if unknown and strict:
        if path is not None:
            for n, qid, doc_id, _ in iter_qrels(path):
                if doc_id in unknown:
                    raise DataError(
                        existing_file(path),
                        f"document {doc_id!r} (query {qid!r}) is not in "
                        f"the corpus ({dropped} such judgements)",
                        n,
                        "corpus-id",
                    )
        raise DataError(
            path or "qrels",
            f"{dropped} judgements name documents not in the corpus, e.g. {sorted(unknown)[:3]}",
        )
    if not unknown:
        return qrels, 0
    log.warning(
        "qrels: dropped %d judgements of %d documents not in the corpus", dropped, len(unknown)
    )
    kept = {q: {d: g for d, g in docs.items() if d not in unknown} for q, docs in qrels.items()}
    return {q: docs for q, docs in kept.items() if docs}, dropped
