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
    # Write a local temporary file; upload it only when the block succeeds. An object store
    # shows an upload whole or not at all, so a failed block leaves no object behind.
    fh = tempfile.NamedTemporaryFile(
        mode, delete=False, **({} if "b" in mode else {"encoding": "utf-8"})
    )
    try:
        with fh:
            yield fh
        _upload_file(Path(fh.name), *filesystem(uri))
    finally:
        os.unlink(fh.name)


def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem and in-filesystem path of a URI (s3://, gs://, hdfs://, ...).

    The endpoint of an S3-compatible store comes from the URI's query
    (`s3://bucket/run?endpoint_override=host:9000&scheme=http`) or from `AWS_ENDPOINT_URL`,
    which pyarrow reads; credentials come from the usual AWS / GCP environment and files.
    """
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def join(base: str | os.PathLike, *names: str) -> str:
    """`base/name/...` for a local path or a URI (a URI's `?query` stays at the end)."""
    if not is_uri(base):
        return "/".join([str(base).rstrip("/"), *names])
    head, sep, query = str(base).partition("?")
    return "/".join([head.rstrip("/"), *names]) + sep + query


def _upload_file(local: Path, fs: Any, path: str) -> None:
    import pyarrow.fs as pafs

    if "/" in path.strip("/"):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pafs.copy_files(
        str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_file(target, "wb") as fh:
        fh.write(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_file(target, "w") as fh:
        fh.write(text)


def atomic_write_json(target: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def readable_by_all(folder: Path) -> None:
    """Give a folder built by libraries that write private files (safetensors via a temporary
    file is 0600) the modes of an ordinary output: files 0644, folders 0755 (under the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name; on success it replaces `target` as a whole.

    For a URI the folder is built locally and uploaded file by file, manifests last, and
    objects under `target` that the new folder lacks are deleted afterwards.
    """
    if is_uri(target):
        with tempfile.TemporaryDirectory(prefix="lead-dir-") as tmp:
            yield Path(tmp)
            upload_dir(tmp, str(target), delete_extra=True)
        return
    target = local_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        readable_by_all(tmp)
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
    if is_uri(folder):
        return 0  # remote writes upload finished files only: no temporary objects exist
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
    if is_uri(path):
        fs, inner = filesystem(str(path))
        with fs.open_input_stream(inner) as fh:
            while block := fh.read(chunk):
                h.update(block)
        return h.hexdigest()
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
        fs, path = filesystem(join(folder, MANIFEST))
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
    atomic_write_json(join(folder, MANIFEST), manifest)


def is_complete(folder: str | os.PathLike) -> bool:
    """A stage's folder is complete when its manifest says so."""
    m = read_manifest(folder)
    return bool(m and m.get("complete"))


# ----------------------------------------------------------------------------- remote folders


def _is_temp(name: str) -> bool:
    return name.startswith(".") and (".tmp-" in name or ".old-" in name)


def upload_dir(local: str | os.PathLike, uri: str, *, delete_extra: bool = False) -> list[str]:
    """Upload a local folder to `uri`: data files first, then manifests, deepest first.

    A reader of the remote folder never sees a manifest before the files it lists. Temporary
    files of interrupted writers are not uploaded.

    Args:
        delete_extra: also delete remote files the local folder does not have (after uploading).

    Returns:
        The relative paths uploaded, in upload order.
    """
    local = local_path(local)
    now = snapshot(local)
    fs, root = filesystem(uri)
    sent = _upload_ordered(local, fs, root, list(now))
    if delete_extra:
        for rel, path in _remote_files(fs, root).items():
            if rel not in now:
                fs.delete_file(path)
    return sent


def _upload_ordered(local: Path, fs: Any, root: str, rels: list[str]) -> list[str]:
    """Upload `rels` (data before manifests, a parent's manifest after its children's); a file
    that vanished meanwhile (a rotated checkpoint) is skipped. Returns those uploaded."""
    sent = []
    for rel in sorted(rels, key=lambda r: (r.endswith(MANIFEST), -r.count("/"), r)):
        if (local / rel).is_file():
            with contextlib.suppress(FileNotFoundError):
                _upload_file(local / rel, fs, f"{root.rstrip('/')}/{rel}")
                sent.append(rel)
    return sent


def _remote_files(fs: Any, root: str) -> dict[str, str]:
    """Relative path -> filesystem path of every file under `root` (none when it is missing)."""
    import pyarrow.fs as pafs

    listing = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
    cut = len(root.rstrip("/")) + 1
    return {i.path[cut:]: i.path for i in listing if i.type == pafs.FileType.File}


def download_dir(uri: str, local: str | os.PathLike) -> int:
    """Copy every file under `uri` into the local folder; returns how many (0: none yet)."""
    fs, root = filesystem(uri)
    files = _remote_files(fs, root)
    local = local_path(local)
    for rel, path in files.items():
        with fs.open_input_stream(path) as src, atomic_file(local / rel, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return len(files)


def snapshot(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every finished file under a local folder."""
    folder = local_path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(_is_temp(part) for part in rel.parts):
            continue
        with contextlib.suppress(FileNotFoundError):  # a writer may delete files meanwhile
            if p.is_file():
                st = p.stat()
                out[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


class Mirror:
    """A local folder that stands for an output folder `out` (a local path or a URI).

    For a URI, `pull()` copies what `out` holds into the local folder and `push()` makes `out`
    match it: new and changed files go up, data before manifests, and files deleted locally
    (rotated checkpoints) are deleted remotely afterwards. For a local `out` both do nothing.
    """

    def __init__(self, out: str | os.PathLike, path: Path):
        self.out, self.path = out, path
        self._remote: dict[str, tuple[int, int]] = {}  # what `out` holds, as last pulled/pushed

    def pull(self) -> int:
        if not is_uri(self.out):
            return 0
        n = download_dir(str(self.out), self.path)
        self._remote = snapshot(self.path)
        return n

    def push(self) -> list[str]:
        if not is_uri(self.out):
            return []
        now = snapshot(self.path)
        fs, root = filesystem(str(self.out))
        sent = _upload_ordered(
            self.path, fs, root, [r for r, st in now.items() if self._remote.get(r) != st]
        )
        for rel in sorted(set(self._remote) - set(now)):
            with contextlib.suppress(FileNotFoundError):
                fs.delete_file(f"{root.rstrip('/')}/{rel}")
        self._remote = {r: st for r, st in now.items() if r in sent or self._remote.get(r) == st}
        return sent


@contextlib.contextmanager
def mirrored(out: str | os.PathLike) -> Iterator[Mirror]:
    """A `Mirror` of `out`: `out` itself when local; for a URI, a scratch folder pulled from it.

    The scratch copy starts as a download of what `out` holds (so a rerun resumes from the
    manifests there) and is pushed back when the block ends, also when it fails, so the
    finished shards and checkpoints of a crashed run survive. Call `push()` inside the block
    to sync earlier (a long run does it periodically).
    """
    if not is_uri(out):
        yield Mirror(out, local_path(out))
        return
    with tempfile.TemporaryDirectory(prefix="lead-mirror-") as tmp:
        mirror = Mirror(out, Path(tmp))
        mirror.pull()
        try:
            yield mirror
        finally:
            mirror.push()
