"""The corpus store: any corpus file converted once into memory-mapped Arrow IPC files.

    folder/corpus.arrow   doc_idx int64, doc_id, title, text (row i has doc_idx i)
    folder/ids.arrow      doc_id in row order; sorted ids (sorted_id) and their rows (sorted_idx)
    folder/manifest.json  source path, size and mtime, row counts, skips; written last

Reopening memory-maps both files, so an 8.8M-passage corpus never becomes Python objects: rows
are fetched by `doc_idx`, and `idx_of` maps ids to rows by binary search in the sorted ids
(`pyarrow.compute.search_sorted`; a hash lookup with `index_in` would rebuild its table over all
N ids on every call: ~1.2 s per call at N = 2M). A build that stops half-way leaves no manifest,
so it never looks complete; a build whose source is unchanged is skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lead_ray.data.beir import corpus_file
from lead_ray.data.corpus import iter_corpus_lines, passage_texts
from lead_ray.data.errors import DataError
from lead_ray.data.textio import OnError, ReadStats, check_on_error
from lead_ray.storage import (
    MANIFEST,
    atomic_file,
    read_manifest,
    remove_stale_temps,
    write_manifest,
)

log = logging.getLogger(__name__)

KIND = "corpus_store"
FORMAT_VERSION = 1
CORPUS_FILE, IDS_FILE = "corpus.arrow", "ids.arrow"
SCHEMA = pa.schema(
    [
        ("doc_idx", pa.int64()),
        ("doc_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
    ]
)
_BATCH_BYTES = 64 << 20  # keeps every batch's string offsets far from the 2 GiB int32 limit


def _single(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: zero-copy for the one-chunk columns of ids.arrow."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _source_state(source: Path) -> dict[str, Any]:
    st = source.stat()
    return {
        "source": str(source.resolve()),
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
    }


class CorpusStore:
    """A read-only, memory-mapped corpus: `len`, `doc_ids`, `idx_of`, `get`, `iter_batches`."""

    def __init__(self, folder: Path, corpus: pa.Table, ids: pa.Table, manifest: dict[str, Any]):
        self.folder, self.table, self.manifest = folder, corpus, manifest
        self._batches = corpus.to_batches()
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches])  # [num_batches + 1]
        self._doc_ids = _single(ids.column("doc_id"))
        self._sorted_ids = _single(ids.column("sorted_id"))
        self._sorted_idx = _single(ids.column("sorted_idx")).to_numpy()  # [N] int64, zero-copy

    # ------------------------------------------------------------------ build / open

    @classmethod
    def build(
        cls,
        source: str | os.PathLike,
        folder: str | os.PathLike,
        *,
        on_error: OnError = "raise",
        batch_rows: int = 8192,
        force: bool = False,
    ) -> CorpusStore:
        """Convert `source` (a corpus file, BEIR folder or `@sample`) into `folder` and open it.

        Skipped (the store is just opened) when `folder` holds a complete store of the same
        source file (path, size, mtime) built with the same `on_error`, unless `force`.

        Raises:
            DataError: bad input (see `iter_corpus`) or a duplicate doc id (naming both lines).
        """
        check_on_error(on_error)
        source, folder = corpus_file(source), Path(folder)
        if not source.is_file():
            raise DataError(source, "file not found")
        state = {**_source_state(source), "on_error": on_error, "format_version": FORMAT_VERSION}
        old = read_manifest(folder)
        if (
            not force
            and old
            and old.get("complete")
            and old.get("kind") == KIND
            and all(old.get(k) == v for k, v in state.items())
        ):
            log.info("corpus store %s is up to date (%d docs)", folder, old["rows"])
            return cls.open(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # An old manifest must never vouch for new, half-written files.
        (folder / MANIFEST).unlink(missing_ok=True)
        remove_stale_temps(folder)
        stats = ReadStats()
        try:
            lines = _write_corpus(source, folder / CORPUS_FILE, on_error, stats, batch_rows)
            _write_ids(source, folder, lines)
        except BaseException:
            for name in (CORPUS_FILE, IDS_FILE):
                (folder / name).unlink(missing_ok=True)
            raise
        write_manifest(
            folder,
            {
                "kind": KIND,
                "complete": True,
                **state,
                "rows": stats.rows,
                "skipped": stats.skipped,
                "skipped_by_problem": dict(stats.problems),
                "files": {n: (folder / n).stat().st_size for n in (CORPUS_FILE, IDS_FILE)},
            },
        )
        log.info(
            "built corpus store %s: %d docs from %s (%d lines skipped)",
            folder,
            stats.rows,
            source,
            stats.skipped,
        )
        return cls.open(folder)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> CorpusStore:
        """Memory-map a complete store (`DataError` when the folder holds none)."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if not (manifest and manifest.get("complete") and manifest.get("kind") == KIND):
            raise DataError(
                folder, "no complete corpus store here (build it with CorpusStore.build)"
            )
        corpus, ids = (
            pa.ipc.open_file(pa.memory_map(str(folder / n))).read_all()
            for n in (CORPUS_FILE, IDS_FILE)
        )
        if corpus.num_rows != manifest["rows"] or ids.num_rows != manifest["rows"]:
            raise DataError(
                folder,
                f"store files hold {corpus.num_rows}/{ids.num_rows} rows, the manifest "
                f"{manifest['rows']}: rebuild it",
            )
        return cls(folder, corpus, ids, manifest)

    def __reduce__(self):
        # Sent to another process (a Ray task) as its folder, reopened there: never the data.
        return CorpusStore.open, (str(self.folder),)

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self._doc_ids)

    def __repr__(self) -> str:
        return f"CorpusStore({str(self.folder)!r}, {len(self)} docs)"

    @property
    def doc_ids(self) -> pa.Array:
        """Every doc id in `doc_idx` order (a memory-mapped pyarrow array)."""
        return self._doc_ids

    def idx_of(self, ids: Sequence[str]) -> np.ndarray:
        """`doc_idx` of each id, -1 for ids not in the corpus. Returns `[len(ids)]` int64."""
        needles = pa.array([i if isinstance(i, str) else str(i) for i in ids], pa.large_string())
        if len(needles) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = pc.search_sorted(self._sorted_ids, needles).to_numpy().astype(np.int64)
        inside = pos < len(self)
        pos = np.where(inside, pos, 0)
        hit = inside & pc.equal(self._sorted_ids.take(pa.array(pos)), needles).to_numpy(
            zero_copy_only=False
        )
        return np.where(hit, self._sorted_idx[pos], -1).astype(np.int64)

    def get(self, doc_idx: np.ndarray | Sequence[int]) -> tuple[list[str], list[str]]:
        """(titles, texts) of the given rows, in the given order."""
        idx = np.asarray(doc_idx, dtype=np.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= len(self))]
        if bad.size:
            raise IndexError(f"doc_idx out of range [0, {len(self)}): {bad[:5].tolist()}")
        titles: list[Any] = [None] * idx.size
        texts: list[Any] = [None] * idx.size
        batch = np.searchsorted(self._starts, idx, side="right") - 1  # [K]
        order = np.argsort(batch, kind="stable")
        cuts = np.flatnonzero(np.diff(batch[order])) + 1
        for group in np.split(order, cuts) if idx.size else []:
            b = int(batch[group[0]])
            rows = pa.array(idx[group] - self._starts[b])
            part = self._batches[b]
            for pos, title, text in zip(
                group.tolist(),
                part.column(2).take(rows).to_pylist(),
                part.column(3).take(rows).to_pylist(),
                strict=True,
            ):
                titles[pos], texts[pos] = title, text
        return titles, texts

    def texts(self, doc_idx: np.ndarray | Sequence[int], title: bool = True) -> list[str]:
        """The passage text of the given rows as every model reads it (`title text`, or `text`
        alone with `title=False`), in the given order: the one place ids become texts."""
        return passage_texts(*self.get(doc_idx), title=title)

    def iter_batches(
        self, rows: int, start: int = 0, stop: int | None = None
    ) -> Iterator[dict[str, np.ndarray | list]]:
        """Rows `start:stop`, `rows` at a time: {"doc_idx": [R] int64, "doc_id", "title", "text"}"""
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        stop = len(self) if stop is None else min(stop, len(self))
        for off in range(start, stop, rows):
            part = self.table.slice(off, min(rows, stop - off))
            yield {
                "doc_idx": part.column("doc_idx").to_numpy(),
                "doc_id": part.column("doc_id").to_pylist(),
                "title": part.column("title").to_pylist(),
                "text": part.column("text").to_pylist(),
            }


def _write_corpus(
    source: Path, target: Path, on_error: OnError, stats: ReadStats, batch_rows: int
) -> np.ndarray:
    """Stream the source into `target` batch by batch; returns each row's source line, [N] int64."""
    lines: list[np.ndarray] = []
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    nbytes = start = 0
    with atomic_file(target, "wb") as fh, pa.ipc.new_file(fh, SCHEMA) as writer:

        def flush() -> None:
            nonlocal nbytes, start
            writer.write_batch(
                pa.record_batch(
                    [
                        pa.array(np.arange(start, start + len(ids), dtype=np.int64)),
                        pa.array(ids, pa.string()),
                        pa.array(titles, pa.string()),
                        pa.array(texts, pa.string()),
                    ],
                    schema=SCHEMA,
                )
            )
            start += len(ids)
            ids.clear(), titles.clear(), texts.clear()
            nbytes = 0

        line_buf: list[int] = []
        for n, doc in iter_corpus_lines(source, on_error=on_error, stats=stats):
            ids.append(doc.doc_id), titles.append(doc.title), texts.append(doc.text)
            line_buf.append(n)
            nbytes += len(doc.text) + len(doc.title)
            if len(ids) >= batch_rows or nbytes >= _BATCH_BYTES:
                flush()
                lines.append(np.asarray(line_buf, dtype=np.int64))
                line_buf = []
        if ids:
            flush()
            lines.append(np.asarray(line_buf, dtype=np.int64))
    return np.concatenate(lines)


def _write_ids(source: Path, folder: Path, lines: np.ndarray) -> None:
    """ids.arrow: ids in row order and sorted; a duplicate id raises, naming both source lines."""
    with pa.memory_map(str(folder / CORPUS_FILE)) as mm:
        doc_ids = (
            pa.ipc.open_file(mm)
            .read_all()
            .column("doc_id")
            .cast(pa.large_string())
            .combine_chunks()
        )
    order = pc.sort_indices(doc_ids)  # [N] uint64
    sorted_ids = doc_ids.take(order)
    if len(sorted_ids) > 1:
        same = pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
        if same.any():
            i = int(np.argmax(same))
            first, second = sorted(int(r) for r in order.take(pa.array([i, i + 1])).to_numpy())
            raise DataError(
                source,
                f"duplicate doc id {sorted_ids[i].as_py()!r} (first at line {lines[first]})",
                int(lines[second]),
                "doc_id",
            )
    table = pa.table(
        {"doc_id": doc_ids, "sorted_id": sorted_ids, "sorted_idx": order.cast(pa.int64())}
    )
    with atomic_file(folder / IDS_FILE, "wb") as fh, pa.ipc.new_file(fh, table.schema) as writer:
        writer.write_table(table)
