"""BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) and the `@sample` alias.

`@sample` names the small collection shipped inside the package; `@sample/<file>` a file in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from lead_ray.data.errors import DataError

SAMPLE = "@sample"
_EXTS = (".jsonl", ".jsonl.gz", ".parquet", ".tsv", ".tsv.gz")
_QRELS_EXTS = (".tsv", ".tsv.gz", ".txt", ".trec")


def resolve_path(path: str | os.PathLike) -> Path:
    """`path` as a `Path`, with `@sample[/rel]` mapped into the packaged sample collection."""
    text = os.fspath(path)
    if text == SAMPLE or text.startswith(SAMPLE + "/"):
        from lead_ray.resources import resource_path

        return resource_path("sample").joinpath(*text.split("/")[1:])
    return Path(text).expanduser()


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _EXTS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


class BeirFolder:
    """The files of a BEIR folder; a clear `DataError` lists what is missing.

    Attributes:
        path: the folder.
        corpus: `corpus.jsonl` (also `.jsonl.gz`, `.parquet`, `.tsv`).
        queries: `queries.jsonl` (same alternatives).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = resolve_path(path)
        if not self.path.is_dir():
            raise DataError(
                self.path,
                "not a folder (a BEIR folder holds corpus.jsonl, queries.jsonl "
                "and qrels/<split>.tsv)",
            )
        corpus, queries = _find(self.path, "corpus"), _find(self.path, "queries")
        missing = [
            name
            for name, found in (("corpus.jsonl", corpus), ("queries.jsonl", queries))
            if found is None
        ]
        if missing:
            have = ", ".join(sorted(p.name for p in self.path.iterdir())) or "nothing"
            raise DataError(
                self.path, f"not a BEIR folder: missing {' and '.join(missing)} (found: {have})"
            )
        self.corpus: Path = corpus
        self.queries: Path = queries

    def qrels_files(self) -> dict[str, Path]:
        """split -> qrels file, for every `qrels/<split>.tsv` present (empty when none)."""
        folder = self.path / "qrels"
        out: dict[str, Path] = {}
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                for ext in _QRELS_EXTS:
                    if p.is_file() and p.name.endswith(ext) and not p.name.startswith("."):
                        out.setdefault(p.name[: -len(ext)], p)
        return out

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels_files())

    def qrels(self, split: str) -> Path:
        """The qrels file of `split`; a `DataError` lists the splits that exist."""
        files = self.qrels_files()
        if split not in files:
            have = ", ".join(sorted(files)) or "none"
            raise DataError(
                self.path / "qrels", f"no qrels for split {split!r} (splits here: {have})"
            )
        return files[split]

    def __repr__(self) -> str:
        return f"BeirFolder({str(self.path)!r})"


def corpus_file(source: str | os.PathLike) -> Path:
    """A corpus file from a file path, a BEIR folder or `@sample`."""
    path = resolve_path(source)
    return BeirFolder(path).corpus if path.is_dir() else path
