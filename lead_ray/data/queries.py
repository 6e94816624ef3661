"""Read queries: BEIR JSONL `{"_id", "text"}`, MS MARCO / TREC topics TSV `qid<TAB>text`, Parquet.

Returns `{query_id: text}`; ids stay strings. The same id twice with different texts is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from lead_ray.data import textio
from lead_ray.data.errors import DataError

ID_KEYS = ("_id", "id", "query_id", "qid")
TEXT_KEYS = ("text", "query")
_HEADER_IDS = {"_id", "id", "qid", "query_id", "query-id"}


def read_queries(
    path: str | os.PathLike,
    *,
    on_error: textio.OnError = "raise",
    stats: textio.ReadStats | None = None,
) -> dict[str, str]:
    """`{query_id: text}` of a queries file (format from the suffix, else sniffed).

    Args:
        on_error: "raise" (first bad line raises `DataError`) or "skip" (counted in `stats`).

    Raises:
        DataError: naming file, line and field; also for an empty file.
    """
    stats = stats if stats is not None else textio.ReadStats()
    readers = {"parquet": _parquet, "tsv": _tsv, "jsonl": _jsonl}
    rows = textio.open_rows(path, on_error, stats, readers)
    p = Path(stats.path)
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, qid, text in rows:
        if qid in queries:
            if queries[qid] != text:
                textio.handle(
                    DataError(
                        p,
                        f"query {qid!r} appears twice with different texts (first at "
                        f"line {first_line[qid]})",
                        n,
                        "query_id",
                    ),
                    on_error,
                    stats,
                )
            continue
        queries[qid], first_line[qid] = text, n
        stats.rows += 1
    if not queries:
        raise DataError(
            p,
            "no queries" + (f" ({stats.skipped} malformed lines skipped)" if stats.skipped else ""),
        )
    return queries


def _records(
    records: Iterator[tuple[int, dict]],
    path: Path,
    id_field: str,
    on_error: textio.OnError,
    stats: textio.ReadStats,
) -> Iterator[tuple[int, str, str]]:
    """(line, query_id, text) of JSON / Parquet records; a bad record raises or is skipped."""
    for n, rec in records:
        try:
            qid = textio.as_id(textio.pick(rec, ID_KEYS, path, n), path, n, id_field)
            yield n, qid, textio.as_text(textio.pick(rec, TEXT_KEYS, path, n), path, n, "text")
        except DataError as err:
            textio.handle(err, on_error, stats)


def _jsonl(
    path: Path, on_error: textio.OnError, stats: textio.ReadStats
) -> Iterator[tuple[int, str, str]]:
    return _records(textio.iter_json_records(path, on_error, stats), path, "_id", on_error, stats)


def _tsv(
    path: Path, on_error: textio.OnError, stats: textio.ReadStats
) -> Iterator[tuple[int, str, str]]:
    first = True
    for n, line in textio.iter_lines(path, on_error, stats):
        fields = line.split("\t")
        if (
            first
            and len(fields) == 2
            and fields[0].strip().lower() in _HEADER_IDS
            and fields[1].strip().lower() in TEXT_KEYS
        ):
            first = False
            continue  # a header line
        first = False
        if len(fields) != 2:
            textio.handle(
                DataError(
                    path,
                    f"expected 2 tab-separated columns (query_id, text), found {len(fields)}",
                    n,
                ),
                on_error,
                stats,
            )
            continue
        try:
            yield n, textio.as_id(fields[0], path, n, "query_id"), fields[1]
        except DataError as err:
            textio.handle(err, on_error, stats)


def _parquet(
    path: Path, on_error: textio.OnError, stats: textio.ReadStats
) -> Iterator[tuple[int, str, str]]:
    names = textio.parquet_columns(path)
    if not any(k in names for k in ID_KEYS) or not any(k in names for k in TEXT_KEYS):
        raise DataError(
            path,
            f"a queries Parquet file needs an id column (query_id, _id or id) and "
            f"a text column; it has {names}",
        )
    return _records(textio.iter_parquet_records(path), path, "query_id", on_error, stats)
