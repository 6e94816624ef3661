"""Stream a corpus file as `Doc`s: BEIR / Pyserini JSONL, MS MARCO TSV, Parquet, optionally `.gz`.

Formats (by suffix, else sniffed):
- JSONL: `{"_id", "title", "text"}` (BEIR) or `{"id", "contents"}` (Pyserini); title optional.
- TSV: `pid<TAB>text` (MS MARCO `collection.tsv`), `id<TAB>text<TAB>title`, or
  `docid<TAB>url<TAB>title<TAB>body` (MS MARCO `msmarco-docs.tsv`); a header line naming the
  columns (`id text title url`, in any order) is recognised and used.
- TREC documents (`<DOC>` ... `</DOC>`, e.g. MS MARCO `msmarco-docs.trec`): the id from
  `<DOCNO>`, the text from `<TEXT>`; a `<TEXT>` that starts with a URL line is MS MARCO's
  layout (url, title, body lines), else the title comes from `<TITLE>` or `<HEADLINE>`.
- Parquet: an id column (`doc_id`, `_id`, `id`, `docid`), `text` (or `contents`), optional `title`.
Ids stay strings (integers become their decimal text). Nothing is held in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from lead_ray.data.errors import DataError
from lead_ray.data.textio import (
    OnError,
    ReadStats,
    as_id,
    as_text,
    handle,
    iter_json_records,
    iter_lines,
    iter_parquet_records,
    open_rows,
    parquet_columns,
    pick,
)

log = logging.getLogger(__name__)

ID_KEYS = ("_id", "id", "doc_id", "docid")
TEXT_KEYS = ("text", "contents")
_HEADER_NAMES = {
    "id",
    "_id",
    "pid",
    "doc_id",
    "docid",
    "doc-id",
    "corpus-id",
    "text",
    "title",
    "contents",
    "passage",
    "url",
    "body",
}


class Doc(NamedTuple):
    doc_id: str
    title: str
    text: str


def passage_text(title: str | None, text: str) -> str:
    """The text a passage is encoded as: `title text` (BEIR convention) or just `text`."""
    return f"{title} {text}" if title else text


def passage_texts(
    titles: Sequence[str | None], texts: Sequence[str], title: bool = True
) -> list[str]:
    """`passage_text` of every row; `title=False` (`data.title: false`) drops the titles."""
    if not title:
        return [str(t) for t in texts]
    return [
        passage_text(h if isinstance(h, str) else None, str(t))
        for h, t in zip(titles, texts, strict=True)
    ]


def iter_corpus(
    path: str | os.PathLike, *, on_error: OnError = "raise", stats: ReadStats | None = None
) -> Iterator[Doc]:
    """Every document of a corpus file, in file order.

    Args:
        path: the corpus file (`@sample/corpus.jsonl` works too).
        on_error: "raise": the first bad line raises `DataError` (file:line: field: problem);
            "skip": bad lines are skipped and counted in `stats`.
        stats: filled while reading (rows kept, lines skipped by problem); logged at the end.

    Raises:
        DataError: a bad line (on_error="raise"), an unreadable file, or no documents at all.
    """
    for _, doc in iter_corpus_lines(path, on_error=on_error, stats=stats):
        yield doc


def iter_corpus_lines(
    path: str | os.PathLike, *, on_error: OnError = "raise", stats: ReadStats | None = None
) -> Iterator[tuple[int, Doc]]:
    """`iter_corpus` with each document's line (row, for Parquet) number."""
    stats = stats if stats is not None else ReadStats()
    readers = {"parquet": _parquet, "tsv": _tsv, "jsonl": _jsonl, "trecdoc": _trec}
    for n, doc in open_rows(path, on_error, stats, readers):
        stats.rows += 1
        yield n, doc
    if stats.rows == 0:
        skipped = f" ({stats.skipped} malformed lines skipped)" if stats.skipped else ""
        raise DataError(stats.path, f"no documents in the corpus{skipped}")
    if stats.skipped:
        log.warning(stats.summary())


def _jsonl(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, Doc]]:
    for n, rec in iter_json_records(path, on_error, stats):
        try:
            yield n, _doc(rec, path, n)
        except DataError as err:
            handle(err, on_error, stats)


def _doc(rec: dict, path: Path, n: int) -> Doc:
    doc_id = as_id(pick(rec, ID_KEYS, path, n), path, n, "_id")
    text = as_text(pick(rec, TEXT_KEYS, path, n), path, n, "text")
    title = as_text(rec.get("title"), path, n, "title", required=False)
    return Doc(doc_id, title, text)


def _tsv(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, Doc]]:
    columns: list[str] | None = None  # fixed by the header or the first data line
    for n, line in iter_lines(path, on_error, stats):
        fields = line.split("\t")
        if columns is None:
            if len(fields) in _TSV_LAYOUTS and {f.strip().lower() for f in fields} <= _HEADER_NAMES:
                columns = _header_columns(fields, path, n)
                continue
            if len(fields) not in _TSV_LAYOUTS:
                handle(
                    DataError(
                        path,
                        "expected 2 tab-separated columns (id, text), 3 (id, text, title) or 4 "
                        f"(docid, url, title, body), found {len(fields)}",
                        n,
                    ),
                    on_error,
                    stats,
                )
                continue
            columns = _TSV_LAYOUTS[len(fields)]
        if len(fields) != len(columns):
            handle(
                DataError(
                    path,
                    f"expected {len(columns)} tab-separated columns "
                    f"({', '.join(columns)}), found {len(fields)}",
                    n,
                ),
                on_error,
                stats,
            )
            continue
        row = dict(zip(columns, fields, strict=True))
        try:
            yield n, Doc(as_id(row["id"], path, n, "id"), row.get("title", ""), row["text"])
        except DataError as err:
            handle(err, on_error, stats)


_TSV_LAYOUTS = {  # columns of a headerless TSV corpus, by count
    2: ["id", "text"],
    3: ["id", "text", "title"],
    4: ["id", "url", "title", "text"],  # MS MARCO documents
}


def _header_columns(fields: list[str], path: Path, n: int) -> list[str]:
    names = []
    for f in fields:
        f = f.strip().lower()
        names.append(
            f
            if f in ("title", "url")
            else "text"
            if f in ("text", "contents", "passage", "body")
            else "id"
        )
    if sorted(set(names)) != sorted(names) or "id" not in names or "text" not in names:
        raise DataError(path, f"header {fields!r} must name one id and one text column", n)
    return names


def _parquet(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, Doc]]:
    names = parquet_columns(path)
    if not any(k in names for k in ("doc_id", *ID_KEYS)) or not any(k in names for k in TEXT_KEYS):
        raise DataError(
            path,
            f"a corpus Parquet file needs an id column (doc_id, _id or id) and "
            f"a text column; it has {names}",
        )
    for n, rec in iter_parquet_records(path):
        try:
            doc_id = as_id(pick(rec, ("doc_id", *ID_KEYS), path, n), path, n, "doc_id")
            text = as_text(pick(rec, TEXT_KEYS, path, n), path, n, "text")
            title = as_text(rec.get("title"), path, n, "title", required=False)
        except DataError as err:
            handle(err, on_error, stats)
            continue
        yield n, Doc(doc_id, title, text)


def _trec(path: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, Doc]]:
    """TREC `<DOC>` blocks, streamed line by line (each yielded with its `<DOC>` line)."""
    start, fields, text = 0, {}, None  # start: the open <DOC>'s line (0: outside a document)
    for n, line in iter_lines(path, on_error, stats, blank=True):  # MS MARCO: a title may be ""
        tag = line.strip()
        if not tag and text is None:
            continue
        if not start:
            if tag == "<DOC>":
                start, fields, text = n, {}, None
            else:
                handle(DataError(path, f"expected <DOC>, found {tag[:40]!r}", n), on_error, stats)
            continue
        if text is not None:  # inside <TEXT>
            if tag == "</TEXT>":
                fields["text"], text = text, None
            else:
                text.append(line)
        elif tag == "<TEXT>":
            text = []
        elif tag == "</DOC>":
            try:
                yield start, _trec_doc(fields, path, start)
            except DataError as err:
                handle(err, on_error, stats)
            start = 0
        elif tag == "<DOC>":
            handle(DataError(path, "<DOC> without </DOC>", start), on_error, stats)
            start, fields, text = n, {}, None
        else:
            for name in ("DOCNO", "TITLE", "HEADLINE"):
                if tag.startswith(f"<{name}>") and tag.endswith(f"</{name}>"):
                    fields[name] = tag[len(name) + 2 : -len(name) - 3].strip()
    if start:
        handle(
            DataError(path, "<DOC> without </DOC> at the end of the file", start), on_error, stats
        )


def _trec_doc(fields: dict, path: Path, n: int) -> Doc:
    doc_id = as_id(fields.get("DOCNO"), path, n, "DOCNO")
    lines = fields.get("text") or []
    title = fields.get("TITLE") or fields.get("HEADLINE") or ""
    if lines and lines[0].strip().startswith(("http://", "https://")):  # MS MARCO: url, title, body
        title, lines = (lines[1].strip() if len(lines) > 1 else ""), lines[2:]
    text = " ".join(x.strip() for x in lines if x.strip())
    return Doc(doc_id, title, as_text(text, path, n, "TEXT"))
