"""Reading helpers every reader shares: formats, `.gz`, UTF-8 checks, line numbers, counted skips.

A reader either raises one `DataError` naming file, line and field, or (with `on_error="skip"`)
skips the bad line and counts it in a `ReadStats` the caller can log. Nothing here knows what a
corpus, query or judgement is.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lead_ray.data.beir import resolve_path
from lead_ray.data.errors import DataError

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".trec": "tsv",
    ".run": "tsv",
    ".qrels": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class ReadStats:
    """What a reader kept and skipped; `summary()` is one loggable line."""

    path: str = ""
    rows: int = 0
    skipped: int = 0
    problems: Counter = field(default_factory=Counter)  # field or problem -> count
    first_errors: list[str] = field(default_factory=list)  # up to 5 messages

    def skip(self, err: DataError) -> None:
        self.skipped += 1
        self.problems[err.field or err.problem] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(str(err))

    def summary(self) -> str:
        kinds = ", ".join(f"{k}: {v}" for k, v in self.problems.most_common())
        return f"{self.path}: kept {self.rows} rows, skipped {self.skipped} malformed ({kinds})"


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")


def handle(err: DataError, on_error: OnError, stats: ReadStats) -> None:
    """Raise `err`, or count it as a skipped line."""
    if on_error == "raise":
        raise err
    stats.skip(err)


def existing_file(path: str | Path) -> Path:
    """The resolved path (`@sample` alias applied) of a file that must exist."""
    p = resolve_path(path)
    if not p.is_file():
        raise DataError(p, "file not found" if not p.exists() else "not a file")
    return p


def file_format(path: Path) -> str:
    """`jsonl`, `json`, `tsv`, `parquet` or `trecdoc` (TREC `<DOC>` documents): from the suffix
    (before `.gz`), else from the bytes; a text file (`.tsv`, `.txt`, `.trec` ...) that starts
    with `<DOC>` is `trecdoc`."""
    name = path.name.lower().removesuffix(".gz")
    suffix = name[name.rfind(".") :] if "." in name else ""
    if _SUFFIXES.get(suffix, "tsv") != "tsv":
        return _SUFFIXES[suffix]
    with _open_binary(path) as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b"<DOC>"):
        return "trecdoc"
    return "parquet" if head[:4] == b"PAR1" else "jsonl" if head.startswith(b"{") else "tsv"


def open_rows(
    path: str | Path,
    on_error: OnError,
    stats: ReadStats,
    readers: dict[str, Callable[[Path, OnError, ReadStats], Iterator]],
) -> Iterator:
    """The rows of a data file, read by the reader of its format (`file_format`; `json` files
    are read as `jsonl`). Checks `on_error`, names the file in `stats`."""
    check_on_error(on_error)
    p = existing_file(path)
    stats.path = str(p)
    fmt = file_format(p)
    fmt = "jsonl" if fmt == "json" else fmt
    if fmt not in readers:
        raise DataError(p, f"a {fmt} file, expected one of: {', '.join(readers)}")
    return readers[fmt](p, on_error, stats)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def iter_lines(
    path: Path, on_error: OnError, stats: ReadStats, *, blank: bool = False
) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line (every line with `blank`), decoded as strict
    UTF-8."""
    try:
        with _open_binary(path) as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    handle(
                        DataError(
                            path,
                            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                            f"{err.start + 1})",
                            n,
                        ),
                        on_error,
                        stats,
                    )
                    continue
                if n == 1:
                    line = line.removeprefix("\ufeff")
                line = line.rstrip("\r\n")
                if blank or line.strip():
                    yield n, line
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(path, f"corrupt gzip file ({err})") from None


def iter_columns(path: Path, layouts: dict[int, str]) -> Iterator[tuple[int, list[str], bool]]:
    """(line, fields, first line?) of a whitespace-separated file whose first line fixes the
    column count: one of `layouts` ({count: "what the columns are"}); later lines must match it.

    Raises:
        DataError: a first line of another width, or a line unlike the first, naming the line.
    """
    columns = 0
    for n, line in iter_lines(path, "raise", ReadStats()):
        fields = line.split()
        first = columns == 0
        if first:
            if len(fields) not in layouts:
                ways = " or ".join(f"{k} ({v})" for k, v in layouts.items())
                raise DataError(
                    path, f"expected {ways.replace(' (', ' columns (', 1)}, found {len(fields)}", n
                )
            columns = len(fields)
        if len(fields) != columns:
            raise DataError(
                path, f"expected {columns} columns like the first line, found {len(fields)}", n
            )
        yield n, fields, first


def parse_json_object(path: Path, n: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(path, f"malformed JSON: {err.msg} (column {err.colno})", n) from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", n)
    return obj


def iter_json_records(
    path: Path, on_error: OnError, stats: ReadStats
) -> Iterator[tuple[int, dict]]:
    for n, line in iter_lines(path, on_error, stats):
        try:
            yield n, parse_json_object(path, n, line)
        except DataError as err:
            handle(err, on_error, stats)


def iter_parquet_records(path: Path, batch_rows: int = 4096) -> Iterator[tuple[int, dict]]:
    """(row number from 1, row dict) of a Parquet file, streamed batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(path, f"not a readable Parquet file ({err})") from None
    n = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def parquet_columns(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(path, f"not a readable Parquet file ({err})") from None


def pick(record: dict, names: Sequence[str], path: Path, n: int, *, required: bool = True) -> Any:
    """The value of the first key of `names` present in `record` (None if optional and absent)."""
    for name in names:
        if name in record:
            return record[name]
    if required:
        alts = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
        raise DataError(path, f"missing{alts}", n, names[0])
    return None


def as_id(value: Any, path: Path, n: int, name: str) -> str:
    """An id as a string: strings stay, integers become their decimal text."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    problem = "empty" if value in ("", None) else f"expected a string or integer id, got {value!r}"
    raise DataError(path, problem, n, name)


def as_text(value: Any, path: Path, n: int, name: str, *, required: bool = True) -> str:
    if isinstance(value, str):
        return value
    if value is None and not required:
        return ""
    raise DataError(
        path,
        "missing" if value is None else f"expected a string, got {type(value).__name__}",
        n,
        name,
    )
