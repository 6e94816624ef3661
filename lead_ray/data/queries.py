"""Read queries: BEIR JSONL `{"_id", "text"}`, MS MARCO / TREC topics TSV `qid<TAB>text`, Parquet.

Returns `{query_id: text}`; ids stay strings. The same id twice with different texts is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from lead_ray.data.errors import DataError
from lead_ray.data.textio import (
    OnError,
    ReadStats,
    as_id,
    as_text,
    check_on_error,
    existing_file,
    file_format,
    handle,
    iter_json_records,
    iter_lines,
    iter_parquet_records,
    parquet_columns,
    pick,
)

ID_KEYS = ("_id", "id", "query_id", "qid")
TEXT_KEYS = ("text", "query")
_HEADER_IDS = {"_id", "id", "qid", "query_id", "query-id"}


def read_queries(
    path: str | os.PathLike, *, on_error: OnError = "raise", stats: ReadStats | None = None
) -> dict[str, str]:
    """`{query_id: text}` of a queries file (format from the suffix, else sniffed).

    Args:
        on_error: "raise" (first bad line raises `DataError`) or "skip" (counted in `stats`).

    Raises:
        DataError: naming file, line and field; also for an empty file.
    """
    check_on_error(on_error)
    p = existing_file(path)
    stats = stats if stats is not None else ReadStats()
    stats.path = str(p)
    fmt = file_format(p)
    rows = (
        _tsv(p, on_error, stats)
        if fmt == "tsv"
        else _parquet(p, on_error, stats)
        if fmt == "parquet"
        else _jsonl(p, on_error, stats)
    )
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, qid, text in rows:
        if qid in queries:
            if queries[qid] != text:
                handle(
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


def _jsonl(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, str, str]]:
    for n, rec in iter_json_records(path, on_error, stats):
        try:
            yield (
                n,
                as_id(pick(rec, ID_KEYS, path, n), path, n, "_id"),
                as_text(pick(rec, TEXT_KEYS, path, n), path, n, "text"),
            )
        except DataError as err:
            handle(err, on_error, stats)


def _tsv(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, str, str]]:
    first = True
    for n, line in iter_lines(path, on_error, stats):
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
            handle(
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
            yield n, as_id(fields[0], path, n, "query_id"), fields[1]
        except DataError as err:
            handle(err, on_error, stats)


def _parquet(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, str, str]]:
    names = parquet_columns(path)
    if not any(k in names for k in ID_KEYS) or not any(k in names for k in TEXT_KEYS):
        raise DataError(
            path,
            f"a queries Parquet file needs an id column (query_id, _id or id) and "
            f"a text column; it has {names}",
        )
    for n, rec in iter_parquet_records(path):
        try:
            yield (
                n,
                as_id(pick(rec, ID_KEYS, path, n), path, n, "query_id"),
                as_text(pick(rec, TEXT_KEYS, path, n), path, n, "text"),
            )
        except DataError as err:
            handle(err, on_error, stats)
