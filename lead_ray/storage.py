"""Atomic writes, checksums and manifests: the contract every stage's output folder follows.

A file is written under a temporary name in the same folder, flushed, fsync'ed and renamed, so a
crash never leaves a file that looks complete. A folder (a checkpoint, an exported model) is built
under a temporary name and renamed into place. Every output folder holds `manifest.json`, written
last: what produced the folder, row counts, checksums and which shards are complete. A stage
rerun reads the manifest and redoes only what it does not list as complete.

Paths may be local paths or URIs that pyarrow filesystems understand (s3://, gs://). Object
stores have no partial objects (an upload becomes visible whole when it completes), so there the
"rename" is the upload itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    """A local `Path` for a local path or file:// URI (remote URIs raise)."""
    text = str(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if is_uri(text):
        raise ValueError(f"{text}: a local path is needed here")
    return Path(text)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to `target`; on success fsync and rename it to `target`."""
    if is_uri(target):
        with _remote_atomic_file(str(target), mode) as fh:
            yield fh
        return
    target = local_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _remote_atomic_file(uri: str, mode: str) -> Iterator[Any]:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    with tempfile.NamedTemporaryFile(mode, delete=False) as fh:
        tmp = fh.name
        yield fh
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pafs.copy_files(tmp, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    finally:
        os.unlink(tmp)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_file(target, "wb") as fh:
        fh.write(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_file(target, "w") as fh:
        fh.write(text)


def atomic_write_json(target: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name; on success it replaces `target` as a whole."""
    target = local_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporary files/folders a killed writer left in `folder`; returns how many."""
    folder = local_path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            n += 1
    return n


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(local_path(path), "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint_folder(folder: str | os.PathLike) -> str:
    """A short content hash of a model folder (config + weights), for manifests."""
    folder = local_path(folder)
    h = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        if name.endswith((".json", ".safetensors", ".txt")):
            h.update(name.encode())
            h.update(sha256_file(folder / name).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- manifests


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's manifest, or None when there is none (an incomplete or fresh folder)."""
    if is_uri(folder):
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(str(folder).rstrip("/") + "/" + MANIFEST)
        try:
            with fs.open_input_stream(path) as fh:
                return json.loads(fh.read().decode("utf-8"))
        except FileNotFoundError:
            return None
    p = local_path(folder) / MANIFEST
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write `manifest.json` atomically, stamping the code version and time."""
    from lead_ray import __version__

    manifest = {"lead_ray_version": __version__, "written_at": time.time(), **manifest}
    target = f"{str(folder).rstrip('/')}/{MANIFEST}"
    atomic_write_json(target, manifest)


def is_complete(folder: str | os.PathLike) -> bool:
    """A stage's folder is complete when its manifest says so."""
    m = read_manifest(folder)
    return bool(m and m.get("complete"))
