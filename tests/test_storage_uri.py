"""Storage on s3:// URIs against a real S3-compatible server (moto's, on 127.0.0.1).

pyarrow talks to it as to any S3 endpoint: through `AWS_ENDPOINT_URL` (which pyarrow reads)
or the URI's `?endpoint_override=...&scheme=http` query. Local paths keep their behaviour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from lead_ray import storage
from lead_ray.cli.main import app

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """A fresh bucket; yields (bucket URI, a pyarrow S3 filesystem to inspect it)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": f"http://{s3_server}",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # local scratch files go here
    fs = pafs.S3FileSystem(endpoint_override=s3_server, scheme="http", allow_bucket_creation=True)
    bucket = f"b{tmp_path.name.replace('_', '-').lower()[-40:].strip('-')}"
    fs.create_dir(bucket)
    return f"s3://{bucket}", fs


def read(fs, uri: str) -> bytes:
    with fs.open_input_stream(uri[len("s3://") :]) as fh:
        return fh.read()


def listing(fs, uri: str) -> list[str]:
    root = uri[len("s3://") :]
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File)


def test_atomic_writes_land_whole(s3):
    uri, fs = s3
    storage.atomic_write_text(f"{uri}/run/notes.txt", "héllo\n")
    storage.atomic_write_bytes(f"{uri}/run/blob.bin", bytes(range(256)) * 4096)
    storage.atomic_write_json(f"{uri}/run/x.json", {"a": 1})
    assert read(fs, f"{uri}/run/notes.txt") == "héllo\n".encode()
    assert read(fs, f"{uri}/run/blob.bin") == bytes(range(256)) * 4096
    assert json.loads(read(fs, f"{uri}/run/x.json")) == {"a": 1}
    assert (
        storage.sha256_file(f"{uri}/run/blob.bin")
        == hashlib.sha256(bytes(range(256)) * 4096).hexdigest()
    )


def test_a_failed_write_leaves_no_object_and_no_scratch(s3, tmp_path):
    uri, fs = s3
    with pytest.raises(RuntimeError, match="crash"):
        with storage.atomic_file(f"{uri}/run/half.bin") as fh:
            fh.write(b"x" * 1000)
            raise RuntimeError("crash")
    assert listing(fs, uri) == []
    assert list(tmp_path.iterdir()) == []  # the local scratch file is gone too


def test_manifest_is_the_source_of_truth(s3):
    uri, _ = s3
    run = f"{uri}/run"
    assert storage.read_manifest(run) is None and not storage.is_complete(run)
    storage.write_manifest(run, {"complete": False, "shards": {"0": "done"}})
    assert storage.read_manifest(run)["shards"] == {"0": "done"}
    assert not storage.is_complete(run)
    storage.write_manifest(run, {"complete": True})
    assert storage.is_complete(run)


def test_endpoint_in_the_uri_query(s3, s3_server, monkeypatch):
    uri, fs = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    base = f"{uri}/q?endpoint_override={s3_server}&scheme=http"
    assert storage.join(base, "a", "manifest.json") == (
        f"{uri}/q/a/manifest.json?endpoint_override={s3_server}&scheme=http"
    )
    storage.write_manifest(storage.join(base, "a"), {"complete": True})
    assert storage.is_complete(storage.join(base, "a"))
    assert listing(fs, uri) == ["q/a/manifest.json"]


def test_atomic_dir_replaces_the_remote_folder(s3):
    uri, fs = s3
    target = f"{uri}/model"
    with storage.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("2")
    assert listing(fs, target) == ["a.txt", "sub/b.txt"]
    with storage.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new")
    assert listing(fs, target) == ["a.txt"]
    assert read(fs, f"{target}/a.txt") == b"new"
    with pytest.raises(RuntimeError):  # a failed build leaves the old folder as it was
        with storage.atomic_dir(target) as tmp:
            (tmp / "c.txt").write_text("3")
            raise RuntimeError
    assert listing(fs, target) == ["a.txt"]


def test_upload_puts_manifests_last_deepest_first(s3, tmp_path):
    uri, fs = s3
    local = tmp_path / "out"
    for rel in [
        "manifest.json",
        "emb/manifest.json",
        "emb/shard-0.parquet",
        "index/0.faiss",
        "emb/.shard-1.parquet.tmp-1234abcd",
        "a.txt",
    ]:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_text(rel)
    order = storage.upload_dir(local, f"{uri}/run")
    assert order == [
        "emb/shard-0.parquet",
        "index/0.faiss",
        "a.txt",
        "emb/manifest.json",
        "manifest.json",
    ]
    assert listing(fs, f"{uri}/run") == sorted(order)  # the writer's temp file stayed local


def test_mirrored_resumes_from_and_syncs_back_to_the_uri(s3):
    uri, fs = s3
    run = f"{uri}/run"
    storage.atomic_write_text(f"{run}/emb/shard-0.parquet", "shard 0")
    storage.atomic_write_text(f"{run}/old.txt", "stale")
    storage.write_manifest(f"{run}/emb", {"complete": False, "done": [0]})
    with storage.mirrored(run) as mirror:
        local = mirror.path
        # the rerun sees what the last run finished
        assert storage.read_manifest(local / "emb")["done"] == [0]
        assert (local / "emb" / "shard-0.parquet").read_text() == "shard 0"
        (local / "emb" / "shard-1.parquet").write_text("shard 1")
        storage.write_manifest(local / "emb", {"complete": True, "done": [0, 1]})
        (local / "old.txt").unlink()
    assert listing(fs, run) == ["emb/manifest.json", "emb/shard-0.parquet", "emb/shard-1.parquet"]
    assert storage.is_complete(f"{run}/emb")


def test_periodic_push_follows_rotated_checkpoints(s3):
    uri, fs = s3
    with storage.mirrored(f"{uri}/run") as mirror:
        (mirror.path / "ckpt-10").mkdir()
        (mirror.path / "ckpt-10" / "state.bin").write_bytes(b"10")
        storage.write_manifest(mirror.path, {"latest": "ckpt-10"})
        assert mirror.push() == ["ckpt-10/state.bin", "manifest.json"]
        assert mirror.push() == []  # nothing changed: nothing sent again
        (mirror.path / "ckpt-20").mkdir()
        (mirror.path / "ckpt-20" / "state.bin").write_bytes(b"20")
        storage.write_manifest(mirror.path, {"latest": "ckpt-20"})
        for f in (mirror.path / "ckpt-10").iterdir():  # the trainer rotates the old one out
            f.unlink()
        assert mirror.push() == ["ckpt-20/state.bin", "manifest.json"]
        assert listing(fs, f"{uri}/run") == ["ckpt-20/state.bin", "manifest.json"]
    assert storage.read_manifest(f"{uri}/run")["latest"] == "ckpt-20"


def test_mirrored_uploads_what_a_crashed_block_finished(s3):
    uri, fs = s3
    with pytest.raises(KeyboardInterrupt):
        with storage.mirrored(f"{uri}/run") as mirror:
            (mirror.path / "ckpt-10").mkdir()
            (mirror.path / "ckpt-10" / "state.bin").write_bytes(b"10")
            raise KeyboardInterrupt
    assert listing(fs, f"{uri}/run") == ["ckpt-10/state.bin"]


@pytest.mark.slow
def test_a_verb_writes_its_output_to_s3_through_jobs_run(s3):
    """What a submitted job with `--out s3://...` runs: `lead jobs run train ...`."""
    uri, fs = s3
    run = f"{uri}/run"
    res = CliRunner().invoke(
        app,
        [
            "jobs",
            "run",
            "train",
            str(TINY),
            "--out",
            run,
            "--set",
            "train.steps=2",
            "--set",
            "train.checkpoint_every=1",
        ],
    )
    assert res.exit_code == 0, res.output
    files = listing(fs, run)
    assert {
        "config.yaml",
        "train/manifest.json",
        "train/config.yaml",
        "train/student/config.json",
        "train/student/model.safetensors",
    } <= set(files)
    train = storage.join(run, "train")
    assert storage.is_complete(train) and storage.read_manifest(train)["steps"] == 2
    assert not [f for f in files if ".tmp-" in f]


def test_a_verbs_own_out_refuses_a_uri_instead_of_making_a_local_s3_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["train", str(TINY), "--out", "s3://bucket/run"])
    assert res.exit_code == 2
    assert "lead jobs run VERB CONFIG --out s3://bucket/run" in res.output
    assert list(tmp_path.iterdir()) == []


def test_local_paths_keep_their_behaviour(tmp_path):
    with storage.mirrored(tmp_path / "run") as mirror:
        assert mirror.path == tmp_path / "run" and mirror.push() == [] and mirror.pull() == 0
    storage.write_manifest(tmp_path / "run", {"complete": True})
    assert storage.join(tmp_path / "run", "manifest.json") == str(
        tmp_path / "run" / "manifest.json"
    )
    assert storage.is_complete(tmp_path / "run")
    assert storage.remove_stale_temps("s3://bucket/run") == 0
