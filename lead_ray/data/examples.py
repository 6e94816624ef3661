"""Training examples: a query, its positives, its negatives and optional cached teacher scores.

Read from JSONL or Parquet (`query_id`, optional `query`, `positive_ids`, `negative_ids`,
optional `teacher_scores`; Tevatron's `positive_document_ids` / `negative_document_ids` or
`positive_passages` / `negative_passages` too) and from MS MARCO id triples
(`qid<TAB>pos_pid<TAB>neg_pid`, grouped per query while streaming). Two rules hold for every
example read: a negative is never one of its query's positives (compared as strings; dropped
and counted), and an example without a positive is skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lead_ray.data import textio
from lead_ray.data.errors import DataError
from lead_ray.storage import atomic_file

log = logging.getLogger(__name__)

_POS = ("positive_ids", "positive_document_ids", "positive_passages")
_NEG = ("negative_ids", "negative_document_ids", "negative_passages")


@dataclass
class Example:
    """One training query; `teacher_scores` (if any) align with `positive_ids[:1] + negative_ids`"""

    query_id: str
    query: str | None
    positive_ids: list[str]
    negative_ids: list[str]
    teacher_scores: list[float] | None = None

    def __post_init__(self) -> None:
        if self.teacher_scores is not None and len(self.teacher_scores) != 1 + len(
            self.negative_ids
        ):
            raise ValueError(
                f"query {self.query_id}: {len(self.teacher_scores)} teacher scores for 1 "
                f"positive + {len(self.negative_ids)} negatives"
            )


@dataclass
class ExampleStats(textio.ReadStats):
    """`textio.ReadStats` plus the example-level rules' counts."""

    no_positive: int = 0  # examples skipped: no positive
    negatives_dropped: int = 0  # negatives removed because they were positives
    regrouped: int = 0  # id-triple queries whose lines were not contiguous (several examples)


def clean_example(
    query_id: str,
    query: str | None,
    positives: Sequence[str],
    negatives: Sequence[str],
    teacher_scores: Sequence[float] | None,
    stats: ExampleStats,
) -> Example | None:
    """An `Example` whose negatives (and scores) exclude its positives; None if no positive."""
    pos = list(dict.fromkeys(positives))
    if not pos:
        stats.no_positive += 1
        return None
    known = set(pos)
    keep = [j for j, d in enumerate(negatives) if d not in known]
    stats.negatives_dropped += len(negatives) - len(keep)
    scores = None
    if teacher_scores is not None:
        scores = [float(teacher_scores[0])] + [float(teacher_scores[1 + j]) for j in keep]
    stats.rows += 1
    return Example(query_id, query, pos, [negatives[j] for j in keep], scores)


def read_examples(
    path: str | os.PathLike,
    *,
    on_error: textio.OnError = "raise",
    stats: ExampleStats | None = None,
) -> Iterator[Example]:
    """Stream the examples of a JSONL, Parquet or id-triples TSV file.

    Raises:
        DataError: a malformed line (file:line: field), unless on_error="skip" (counted in `stats`).
    """
    stats = stats if stats is not None else ExampleStats()
    readers = {"tsv": _triples, "parquet": _parquet, "jsonl": _jsonl}
    yield from textio.open_rows(path, on_error, stats, readers)
    if stats.no_positive or stats.negatives_dropped or stats.skipped:
        log.warning(
            "%s: %d examples; skipped %d without a positive and %d malformed; dropped %d "
            "negatives that were positives",
            stats.path,
            stats.rows,
            stats.no_positive,
            stats.skipped,
            stats.negatives_dropped,
        )


def _jsonl(path: Path, on_error: textio.OnError, stats: ExampleStats) -> Iterator[Example]:
    return _from_records(textio.iter_json_records(path, on_error, stats), path, on_error, stats)


def _parquet(path: Path, on_error: textio.OnError, stats: ExampleStats) -> Iterator[Example]:
    return _from_records(textio.iter_parquet_records(path), path, on_error, stats)


def _from_records(records, path: Path, on_error: textio.OnError, stats: ExampleStats):
    """Examples of JSON / Parquet records; a bad record raises or is skipped (counted)."""
    for n, rec in records:
        try:
            ex = _from_record(rec, path, n, stats)
        except DataError as err:
            textio.handle(err, on_error, stats)
            continue
        if ex is not None:
            yield ex


def _ids(value: Any, path: Path, n: int, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(path, f"expected a list of ids, got {type(value).__name__}", n, name)
    # Tevatron's older format lists passages {"docid", "title", "text"}; only the ids are used.
    return [
        textio.as_id(v.get("docid") if isinstance(v, dict) else v, path, n, name) for v in value
    ]


def _from_record(rec: dict, path: Path, n: int, stats: ExampleStats) -> Example | None:
    qid = textio.as_id(textio.pick(rec, ("query_id", "qid", "_id"), path, n), path, n, "query_id")
    query = rec.get("query")
    if query is not None and not isinstance(query, str):
        raise DataError(path, f"expected a string, got {type(query).__name__}", n, "query")
    pos = _ids(textio.pick(rec, _POS, path, n), path, n, "positive_ids")
    neg = _ids(textio.pick(rec, _NEG, path, n, required=False), path, n, "negative_ids")
    scores = rec.get("teacher_scores")
    if scores is not None:
        if not isinstance(scores, list) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores
        ):
            raise DataError(path, "expected a list of numbers", n, "teacher_scores")
        if len(scores) != 1 + len(neg):
            raise DataError(
                path,
                f"{len(scores)} scores for 1 positive + {len(neg)} negatives",
                n,
                "teacher_scores",
            )
    return clean_example(qid, query, pos, neg, scores, stats)


def _triples(path: Path, on_error: textio.OnError, stats: ExampleStats) -> Iterator[Example]:
    """Id triples grouped per query: consecutive lines of one qid make one example.

    Ungrouped input still works: a qid seen again later starts another example, whose
    negatives also exclude the positives of that qid's earlier lines (counted in `regrouped`).
    """
    qid: str | None = None
    pos: list[str] = []
    neg: list[str] = []
    positives_seen: dict[str, set[str]] = {}  # qids of finished groups -> their positives
    for n, line in textio.iter_lines(path, on_error, stats):
        fields = line.split("\t")
        if len(fields) != 3 or any(" " in f.strip() for f in fields):
            problem = (
                "looks like a text triples file (query, positive, negative texts): id triples "
                "`qid<TAB>pos_pid<TAB>neg_pid` are needed"
                if len(fields) == 3
                else f"expected 3 tab-separated columns (qid, pos_pid, neg_pid), not {len(fields)}"
            )
            textio.handle(DataError(path, problem, n), on_error, stats)
            continue
        q, p_id, n_id = (f.strip() for f in fields)
        if not (q and p_id and n_id):
            textio.handle(DataError(path, "empty id in an id triple", n), on_error, stats)
            continue
        if q != qid:
            if qid is not None:
                yield from _finish(qid, pos, neg, positives_seen, stats)
            qid, pos, neg = q, [], []
            if q in positives_seen:
                stats.regrouped += 1
        pos.append(p_id)
        neg.append(n_id)
    if qid is not None:
        yield from _finish(qid, pos, neg, positives_seen, stats)


def _finish(
    qid: str, pos: list[str], neg: list[str], seen: dict[str, set[str]], stats: ExampleStats
) -> Iterator[Example]:
    known = seen.setdefault(qid, set())
    known.update(pos)
    unique = list(dict.fromkeys(neg))  # each line repeats the positive; negatives may repeat too
    kept = [d for d in unique if d not in known]
    stats.negatives_dropped += len(unique) - len(kept)
    ex = clean_example(qid, None, pos, kept, None, stats)
    if ex is not None:
        yield ex


def write_examples(path: str | os.PathLike, examples: Iterable[Example]) -> int:
    """Write examples atomically as JSONL (`.jsonl`) or Parquet (`.parquet`); returns the count."""
    path = Path(path)
    if path.name.lower().endswith((".parquet", ".pq")):
        return _write_parquet(path, examples)
    if not path.name.lower().endswith(".jsonl"):
        raise ValueError(f"{path}: write examples to a .jsonl or .parquet file")
    count = 0
    with atomic_file(path, "w") as fh:
        for ex in examples:
            fh.write(json.dumps(_record(ex), ensure_ascii=False) + "\n")
            count += 1
    return count


def _record(ex: Example) -> dict[str, Any]:
    rec: dict[str, Any] = {"query_id": ex.query_id}
    if ex.query is not None:
        rec["query"] = ex.query
    rec["positive_ids"], rec["negative_ids"] = list(ex.positive_ids), list(ex.negative_ids)
    if ex.teacher_scores is not None:
        rec["teacher_scores"] = [float(s) for s in ex.teacher_scores]
    return rec


def _write_parquet(path: Path, examples: Iterable[Example], chunk: int = 10_000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("query_id", pa.string()),
            ("query", pa.string()),
            ("positive_ids", pa.list_(pa.string())),
            ("negative_ids", pa.list_(pa.string())),
            ("teacher_scores", pa.list_(pa.float64())),
        ]
    )
    count, rows = 0, []
    with atomic_file(path, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for ex in examples:
            rows.append(
                {
                    "query_id": ex.query_id,
                    "query": ex.query,
                    "positive_ids": ex.positive_ids,
                    "negative_ids": ex.negative_ids,
                    "teacher_scores": ex.teacher_scores,
                }
            )
            if len(rows) >= chunk:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count, rows = count + len(rows), []
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return count + len(rows)


def examples_from_qrels(qrels: dict[str, dict[str, int]], min_grade: int = 1) -> list[Example]:
    """One example per query with a judgement >= `min_grade`: positives by grade (highest
    first, then file order), no negatives (mining adds them)."""
    out = []
    for qid, docs in qrels.items():
        pos = sorted((d for d, g in docs.items() if g >= min_grade), key=lambda d: -docs[d])
        if pos:
            out.append(Example(qid, None, pos, []))
    return out


def split_dev(items: Iterable[Any], fraction: float, seed: int = 0) -> list[Any]:
    """The dev share of `items` (query ids, or `Example`s grouped by query id), deterministically.

    Queries are ranked by a seeded hash of their id, so the choice does not depend on the input
    order; round(fraction x queries) queries (at least 1, and never all when there are 2 or
    more) go to dev, with all their items. Returns those items in input order.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    items = list(items)
    keys = [it.query_id if isinstance(it, Example) else str(it) for it in items]
    unique = sorted(set(keys))
    n_dev = (
        0
        if fraction == 0 or len(unique) < 2
        else min(len(unique) - 1, max(1, round(fraction * len(unique))))
    )
    ranked = sorted(
        unique, key=lambda q: hashlib.blake2b(f"{seed}\0{q}".encode(), digest_size=8).digest()
    )
    dev = set(ranked[:n_dev])
    return [it for it, k in zip(items, keys, strict=True) if k in dev]
