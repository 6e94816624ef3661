"""Which shards of an embeddings folder remain to encode, and writing them as they complete.

Shard s holds corpus store rows s*R ... (s+1)*R-1 (R = `encode.shard_rows`), so `doc_idx` is
global and a shard's content is fixed by the store alone. `plan_encoding` keeps the shards the
manifest lists whose file still has its row count and checksum, for the same model fingerprint,
corpus and settings; everything else is encoded again. `ShardWriter` takes encoder output in
any order (the local loop's or the Ray driver's) and writes each shard atomically once all its
rows arrived, then the manifest (`complete: false` until `finish`). No model, no Ray here.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lead_ray.config import Config
from lead_ray.corpus.embeddings import KIND, complete_shards, finalize, write_shard
from lead_ray.corpus.ids import IdMap
from lead_ray.storage import fingerprint_folder, read_manifest, remove_stale_temps

log = logging.getLogger(__name__)


def store_rows(store, start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows start ... stop-1 of the corpus store as the batch dict `CorpusEncoder` takes."""
    return next(store.iter_batches(stop - start, start, stop))


def corpus_fingerprint(store) -> dict[str, Any]:
    """What identifies the store's content in an embeddings manifest (source file and rows)."""
    return {k: store.manifest.get(k) for k in ("source", "source_size", "source_mtime_ns", "rows")}


@dataclass
class EncodePlan:
    """Which shards of an embeddings folder are complete and which remain, for one encoding."""

    folder: Path
    rows: int  # corpus rows (documents)
    shard_rows: int
    meta: dict[str, Any]  # manifest fields that identify this encoding
    done: dict[int, dict[str, Any]]  # shard -> manifest entry (file verified)
    manifest: dict[str, Any] | None = None  # set when the folder is already complete

    @property
    def num_shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    @property
    def todo(self) -> list[int]:
        return [s for s in range(self.num_shards) if s not in self.done]

    def bounds(self, shard: int) -> tuple[int, int]:
        return shard * self.shard_rows, min((shard + 1) * self.shard_rows, self.rows)

    def shard_size(self, shard: int) -> int:
        lo, hi = self.bounds(shard)
        return hi - lo

    def nothing_to_do(self, backend: str) -> dict[str, Any]:
        """The complete manifest as on disk, with `last_run` saying this call encoded nothing."""
        return {**self.manifest, "last_run": {"encoded": [], "backend": backend, "docs": 0}}


def plan_encoding(
    cfg: Config, model_folder: str, store, out_folder: str | os.PathLike
) -> EncodePlan:
    """Read what `out_folder` already holds; shards of another model, corpus or setting are
    redone."""
    from lead_ray.models.backbone import resolve_model_path

    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    enc = cfg.encode
    passages = enc.maxp_passages if enc.doc_mode == "maxp" else 1
    meta = {
        "model": {
            "path": str(model_folder),
            "fingerprint": fingerprint_folder(resolve_model_path(str(model_folder))),
        },
        "settings": {
            "max_length": enc.max_length,
            "doc_mode": enc.doc_mode,
            "title": cfg.data.title,
            "maxp_stride": enc.maxp_stride if passages > 1 else 0,
        },
        "corpus": corpus_fingerprint(store),
        "dtype": enc.dtype,
        "shard_rows": enc.shard_rows,
        "maxp": enc.doc_mode == "maxp",
        "maxp_passages": passages,
    }
    old = read_manifest(out)
    same = (
        bool(old)
        and old.get("kind") == KIND
        and all(old.get(k) == v for k, v in meta.items() if k != "model")
        and (old.get("model") or {}).get("fingerprint") == meta["model"]["fingerprint"]
    )
    if old and not same:
        log.warning("%s: model, corpus or settings changed; encoding every shard again", out)
    ok = complete_shards(out) if same else set()
    done = {int(e["shard"]): e for e in (old or {}).get("shards", []) if int(e["shard"]) in ok}
    for stale in out.glob("shard-*.parquet"):  # shards of an older or unfinished encoding
        if stale.name not in {e["file"] for e in done.values()}:
            stale.unlink()
    plan = EncodePlan(out, len(store), enc.shard_rows, meta, done)
    if same and old.get("complete") and not plan.todo:
        plan.manifest = old
    return plan


class ShardWriter:
    """Collects encoder output rows per shard (any order) and writes each shard once it is whole.

    A shard is whole when all its documents arrived (FirstP: its row count; MaxP: every window
    of each document). Each write updates the manifest (`complete: false`) so a crash loses only
    the unfinished shards; `finish` marks the folder complete.
    """

    def __init__(self, plan: EncodePlan, on_shard: Callable[[int, dict], None] | None = None):
        self.plan, self.on_shard = plan, on_shard
        self.parts: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        self.docs: Counter[int] = Counter()  # documents seen per shard
        self.rows: Counter[int] = Counter()  # rows received per shard
        self.expected: Counter[int] = Counter()  # rows announced by the documents seen
        self.encoded: list[int] = []
        self.passages = plan.meta["maxp_passages"]

    def add(self, out: dict[str, np.ndarray]) -> list[int]:
        """Take one batch of `CorpusEncoder` output; returns the shards written because of it."""
        shard = IdMap(None, self.passages).rows(out["doc_idx"]) // self.plan.shard_rows  # [m]
        written = []
        for s in np.unique(shard).tolist():
            sel = np.flatnonzero(shard == s)
            if s in self.plan.done or s >= self.plan.num_shards:
                raise RuntimeError(f"rows of shard {s}, which is already written or out of range")
            self.parts[s].append({k: out[k][sel] for k in ("doc_idx", "doc_id", "emb")})
            self.rows[s] += len(sel)
            if self.plan.meta["maxp"]:
                first = sel[out["passage"][sel] == 0]
                self.docs[s] += len(first)
                self.expected[s] += int(out["passages"][first].sum())
            else:
                self.docs[s] += len(sel)
                self.expected[s] += len(sel)
            if self.docs[s] == self.plan.shard_size(s) and self.rows[s] == self.expected[s]:
                self._write(s)
                written.append(s)
        return written

    def _write(self, shard: int) -> None:
        parts = self.parts.pop(shard)
        doc_idx = np.concatenate([p["doc_idx"] for p in parts])
        order = np.argsort(doc_idx, kind="stable")
        doc_ids = np.concatenate([p["doc_id"] for p in parts])[order]
        emb = np.concatenate([p["emb"] for p in parts])[order]
        entry = write_shard(self.plan.folder, shard, doc_idx[order], [str(d) for d in doc_ids], emb)
        self.plan.done[shard] = entry
        self.encoded.append(shard)
        finalize(self.plan.folder, list(self.plan.done.values()), complete=False, **self.plan.meta)
        if self.on_shard is not None:
            self.on_shard(shard, entry)

    def finish(self, **run: Any) -> dict[str, Any]:
        """Write the complete manifest; `run` (seconds, backend, ...) is kept under `last_run`."""
        missing = self.plan.todo
        if missing:
            raise RuntimeError(f"encoding ended with shards {missing[:5]} unfinished")
        last = {"encoded": sorted(self.encoded), **run}
        manifest = finalize(
            self.plan.folder,
            list(self.plan.done.values()),
            complete=True,
            **self.plan.meta,
            last_run=last,
        )
        self.plan.manifest = manifest
        return manifest
