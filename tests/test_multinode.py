"""Clusters of several nodes on this machine: an autoscaling head that starts with no worker
node (Ray's fake multi-node provider: each "node" is a real raylet with its own resources).

The head is started with `ray start --head --block` in its own process session, temp dir, ports
and token, and torn down by signalling that session only (never `ray stop`, which would kill
every Ray on the machine, the suite's `ray_local` included).
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import numpy as np
import pytest
from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID
from test_jobs import (
    TINY,
    _job_id,
    _stop_group,
    _wait_state,
    _wait_up,
    free_port,
    head_args,
    node_env,
    running_head,
    start_node,
)
from typer.testing import CliRunner

from lead_ray.cli.main import app

runner = CliRunner()
IDLE_MINUTES = 0.2


def autoscaling_config(gcs: str, worker_types: dict) -> dict:
    """An autoscaler config for the fake multi-node provider (the pip wheel lacks its
    example.yaml): a head with no CPU, the given worker node types."""
    return {
        "cluster_name": "lead-test",
        "max_workers": sum(t["max_workers"] for t in worker_types.values()),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_MINUTES,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs,
            "disable_node_updaters": True,  # the "nodes" are local raylets: nothing to set up
            "disable_launch_config_check": True,
            # several raylets share one IP: the autoscaler must know nodes by their ids (the
            # provider names them fff...0000N, the head fff...00000)
            "use_node_id_as_ip": True,
        },
        "auth": {"ssh_user": "ray"},
        "docker": {},
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            **worker_types,
        },
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture(scope="module")
def autoscaling_head(tmp_path_factory):
    """Yields (dashboard url, token): a token-auth head with 0 CPUs whose autoscaler may add up
    to two 1-CPU worker nodes and removes them after IDLE_MINUTES idle."""
    temp = tmp_path_factory.mktemp("as")
    token, port, dash = uuid.uuid4().hex, free_port(), free_port()
    cfg = autoscaling_config(
        f"127.0.0.1:{port}",
        {"cpu1": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2}},
    )
    (temp / "autoscaler.json").write_text(json.dumps(cfg))
    env = node_env(token, RAY_FAKE_CLUSTER="1", RAY_OVERRIDE_NODE_ID_FOR_TESTING=FAKE_HEAD_NODE_ID)
    args = [*head_args(temp, port, dash), "--num-cpus=0", "--node-ip-address=127.0.0.1",
            f"--autoscaling-config={temp / 'autoscaler.json'}"]  # fmt: skip
    # the provider's worker raylets are children of the head's autoscaler process, in its
    # session: stopping the head stops them too
    with running_head(args, env, temp, token, dash) as head:
        yield head


def alive_workers(url: str, token: str) -> int:
    """Worker nodes (not the head) the cluster reports alive, from the dashboard's state API."""
    import requests

    r = requests.get(
        f"{url}/api/v0/nodes",
        params={"limit": 100, "detail": "true"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    r.raise_for_status()
    nodes = r.json()["data"]["result"]["result"]
    return sum(1 for n in nodes if n["state"] == "ALIVE" and not n.get("is_head_node"))


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)
    return value


@pytest.mark.slow
@pytest.mark.ray
def test_autoscaler_adds_two_nodes_for_training_and_removes_them_when_idle(
    autoscaling_head, tmp_path, monkeypatch
):
    """A head with no CPU and no worker node; `lead submit` of a training whose two Ray Train
    workers need a CPU each: the autoscaler starts two 1-CPU nodes, the job succeeds,
    `lead jobs list` shows it, and the nodes go away after the idle timeout."""
    url, token = autoscaling_head
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    assert alive_workers(url, token) == 0
    # `lead doctor` on the head reads the autoscaler's node types: 2 workers wait for nodes,
    # 3 can never be placed (two 1-CPU nodes at most, a head with no CPU)
    ray_train = ["--verb", "train", "--set", "train.backend=ray"]
    doc = runner.invoke(app, ["doctor", str(TINY), "--address", url, *ray_train,
                              "--set", "train.workers=3"])  # fmt: skip
    assert doc.exit_code == 1, doc.output
    assert "cpu1: 1 CPU; 0-2 nodes" in doc.output and "reach at most 2: never met" in doc.output
    doc = runner.invoke(app, ["doctor", str(TINY), "--address", url, *ray_train,
                              "--set", "train.workers=2"])  # fmt: skip
    assert doc.exit_code == 0, doc.output
    assert "the autoscaler adds nodes, up to 2" in doc.output
    assert "needs at once: train 2 CPU + 0 GPU\n" in doc.output  # the verb's stage only
    out = tmp_path / "run"
    args = ["submit", str(TINY), "--address", url, "--out", str(out)]
    for item in ("train.backend=ray", "train.workers=2", "train.steps=6",
                 "train.checkpoint_every=3", "encode.threads=1"):  # fmt: skip
        args += ["--set", item]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.output)
    # the two nodes the training needs are started for it (none existed before)
    wait_for(lambda: alive_workers(url, token) >= 2, 300, "the autoscaler to add 2 nodes")
    assert _wait_state(url, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}, 600) == "SUCCEEDED"
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["backend"] == "ray" and manifest["stopped_at"] == 6
    listed = runner.invoke(app, ["jobs", "list", "--address", url])
    row = next(x for x in listed.output.splitlines() if x.startswith(job_id))
    assert "SUCCEEDED" in row
    # ... and removed once idle (idle timeout 0.2 min + the autoscaler's update period)
    wait_for(lambda: alive_workers(url, token) == 0, 180, "the idle nodes to be removed")


class StaticCluster:
    """A token-auth head with no CPU and 1-CPU worker nodes, each its own `ray start --block`
    raylet on 127.0.0.1, no autoscaler. `add_nodes(n)` starts worker nodes until n are alive
    (as an operator or an autoscaler replaces a lost node)."""

    def __init__(self, temp, token: str, port: int, dash: int):
        self.temp, self.token, self.port = temp, token, port
        self.url, self.env, self.procs = f"http://127.0.0.1:{dash}", node_env(token), []
        log = temp / "ray-start-head.log"
        args = [*head_args(temp, port, dash), "--num-cpus=0", "--node-ip-address=127.0.0.1"]
        self.procs.append(start_node(args, self.env, log))
        _wait_up(self.url, token, self.procs[0], log)

    def add_nodes(self, n: int) -> None:
        args = [f"--address=127.0.0.1:{self.port}", "--num-cpus=1", "--node-ip-address=127.0.0.1"]
        while (alive := alive_workers(self.url, self.token)) < n:
            log = self.temp / f"ray-start-{len(self.procs)}.log"
            self.procs.append(start_node(args, self.env, log))
            # one at a time: raylets starting together time out on a busy machine
            wait_for(lambda a=alive: alive_workers(self.url, self.token) > a, 180, "a worker node")

    def stop(self) -> None:
        for proc in self.procs:  # all nodes at once, then wait for each (not a minute each)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            _stop_group(proc)


@pytest.fixture(scope="module")
def static_cluster(tmp_path_factory):
    """A `StaticCluster`: a cluster that keeps working when one node dies. The autoscaler's
    fake provider cannot stand in here: it never learns that a node it started has died, so it
    neither replaces nor forgets it."""
    temp = tmp_path_factory.mktemp("n3")
    cluster = None
    try:
        cluster = StaticCluster(temp, uuid.uuid4().hex, free_port(), free_port())
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.mark.slow
@pytest.mark.ray
def test_training_survives_the_loss_of_a_node(static_cluster, tmp_path, monkeypatch):
    """A worker node dies mid-run (its raylet and every process it started are killed, as a
    preempted instance's would be): Ray Train restarts the worker group on the two nodes left,
    from the last checkpoint (on a path every node sees), and the run ends with every
    configured step logged once."""
    from conftest import WorkerKiller, logged_step

    static_cluster.add_nodes(3)
    url, token = static_cluster.url, static_cluster.token
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    out = tmp_path / "run"
    steps = 24
    args = ["submit", str(TINY), "--address", url, "--out", str(out)]
    for item in ("train.backend=ray", "train.workers=2", f"train.steps={steps}",
                 "train.checkpoint_every=4", "train.max_failures=2", "encode.threads=1",
                 f"ray.storage={tmp_path / 'ray-storage'}"):  # fmt: skip
        args += ["--set", item]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.output)
    train_dir = out / "train"

    def after_a_checkpoint():  # the step logged when the node dies (0: not yet)
        return step if (step := logged_step(train_dir)) >= 8 else 0

    with WorkerKiller(after_a_checkpoint, timeout=600, node=True) as killer:
        state = _wait_state(url, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}, 900)
    assert killer.killed, "no training worker was found to kill"
    assert state == "SUCCEEDED"
    assert 4 <= killer.at < steps
    manifest = json.loads((train_dir / "manifest.json").read_text())
    assert manifest["complete"] and manifest["stopped_at"] == steps
    records = [json.loads(x) for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, steps + 1))  # each step logged once
    restarted = {r["resumed_from"] for r in records}
    assert len(restarted) == 2 and max(restarted) >= 4  # one restart, from a checkpoint
    assert alive_workers(url, token) == 2  # the lost node stays lost


@pytest.mark.slow
@pytest.mark.ray
def test_encoding_survives_the_loss_of_a_node(static_cluster, tmp_path, monkeypatch):
    """A worker node dies mid-encode (its raylet and the encoder actor on it killed): Ray Data
    restarts the actor on the node left free and retries its batches; the job succeeds, the
    shards finished before the loss are not written again, every shard is encoded once, and
    the embeddings equal an uninterrupted encoding's."""
    from conftest import WorkerKiller, encoder_actor_pids
    from test_encoding import read_all

    from lead_ray.config import load_config
    from lead_ray.corpus.encode import encode_corpus
    from lead_ray.stages.run import Run

    static_cluster.add_nodes(3)
    url, token = static_cluster.url, static_cluster.token
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    out = tmp_path / "run"
    sets = ["data.synthetic.docs=12000", "encode.model=student-init", "encode.shard_rows=500",
            "encode.actors=2", "encode.cpus_per_actor=1", "encode.threads=1"]  # fmt: skip
    args = ["submit", str(TINY), "--address", url, "--out", str(out), "--verb", "encode"]
    res = runner.invoke(app, [*args, *(x for item in sets for x in ("--set", item))])
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.output)
    emb = out / "embeddings" / "student-init"

    def finished_shards():  # {shard file: (inode, mtime)} once two shards are written
        manifest = emb / "manifest.json"
        shards = json.loads(manifest.read_text())["shards"] if manifest.is_file() else []
        files = [emb / f"shard-{e['shard']:05d}.parquet" for e in shards]
        return (
            {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
            if len(files) >= 2
            else {}
        )

    with WorkerKiller(finished_shards, timeout=600, node=True, pids=encoder_actor_pids) as killer:
        state = _wait_state(url, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}, 900)
    assert killer.killed, "no encoder actor was found to kill"
    assert state == "SUCCEEDED"
    manifest = json.loads((emb / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 12000
    shards = len(manifest["shards"])
    assert len(killer.at) < shards  # the node died mid-encode
    assert sorted(manifest["last_run"]["encoded"]) == list(range(shards))  # each shard once
    for name, stat in killer.at.items():  # finished before the loss: never written again
        f = emb / name
        assert (f.stat().st_ino, f.stat().st_mtime_ns) == stat, name
    # the same model and corpus encoded here, uninterrupted, in one process
    cfg = load_config(TINY, overrides=sets)
    run = Run(cfg, out, progress=False)
    encode_corpus(cfg, out / "models" / "student-init", run.store, tmp_path / "ref", progress=False)
    ids, doc_ids, vectors = read_all(emb)
    ref_ids, ref_doc_ids, ref_vectors = read_all(tmp_path / "ref")
    assert (ids == ref_ids).all() and doc_ids == ref_doc_ids
    np.testing.assert_allclose(vectors, ref_vectors, atol=1e-5)
    assert alive_workers(url, token) == 2  # the lost node stays lost
