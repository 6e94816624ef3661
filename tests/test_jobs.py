"""`lead submit` / `lead jobs` against a real Ray head with token authentication.

One head for the module: `ray start --head --block` in its own session and temp dir, on free
ports, with a token of its own (never ~/.ray). Teardown signals that one process group, so the
session's `ray_local` cluster and any other Ray on the machine are left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.config import load_config
from lead_ray.distributed import jobs

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
BIN = Path(sys.executable).parent
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, token: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            r = requests.get(
                f"{url}/api/version", headers={"Authorization": f"Bearer {token}"}, timeout=2
            )
            if r.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the head did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM `ray start --block` (it stops the processes it started), then SIGKILL whatever
    is left in its process group: only the processes this fixture started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def node_env(token: str, **extra: str) -> dict[str, str]:
    """The environment of a `ray start` of ours: no inherited RAY_* settings, token auth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", **extra)
    return env


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start --block ARGS` in its own process session (so that `_stop_group` stops only
    what it started), its output in `log`."""
    cmd = [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args]
    with open(log, "w") as fh:
        return subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def head_args(temp: Path, port: int, dash: int) -> list[str]:
    """A head on 127.0.0.1 with its own temp dir and ports, the dashboard on loopback."""
    if len(str(temp)) > 60:  # Ray's unix socket paths live under it (limit ~107 bytes)
        pytest.fail(f"temp dir {temp} is too long for Ray's sockets; set --basetemp shorter")
    return [
        "--head", f"--temp-dir={temp}", f"--port={port}", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}", f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
    ]  # fmt: skip


@contextlib.contextmanager
def running_head(args: list[str], env: dict[str, str], temp: Path, token: str, dash: int):
    """A head of ours (`start_node` with `head_args`), up until the block ends: yields (dashboard
    url, token); stopping it stops what its session started (autoscaled nodes included)."""
    log = temp / "ray-start.log"
    proc = start_node(args, env, log)
    try:
        url = f"http://127.0.0.1:{dash}"
        _wait_up(url, token, proc, log)
        yield url, token
    finally:
        _stop_group(proc)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A token-auth Ray head on 127.0.0.1: yields (dashboard url, token)."""
    temp = tmp_path_factory.mktemp("head")
    token, dash = uuid.uuid4().hex, free_port()
    env = node_env(token, RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1")
    with running_head([*head_args(temp, free_port(), dash), "--num-cpus=2"], env, temp, token,
                      dash) as head:  # fmt: skip
        yield head


@pytest.fixture
def with_token(head, monkeypatch):
    url, token = head
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    return url


def _wait_state(url: str, job_id: str, states: set[str], timeout: float = 120) -> str:
    client = jobs.connect(url)
    deadline = time.monotonic() + timeout
    while (state := jobs.status(client, job_id)) not in states:
        assert time.monotonic() < deadline, f"{job_id} still {state}"
        time.sleep(0.5)
    return state


def _job_id(output: str) -> str:
    line = next(x for x in output.splitlines() if x.startswith("submitted "))
    return line.split()[1]


# ----------------------------------------------------------------------------- on the head


@pytest.mark.slow
@pytest.mark.ray
def test_submit_follow_runs_tiny_and_writes_outputs(with_token, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "submit",
            str(TINY),
            "--address",
            with_token,
            "--out",
            str(out),
            "--set",
            "train.steps=4",
            "--set",
            "train.checkpoint_every=2",
            "--follow",
        ],
    )
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.output)
    assert f"job {job_id}: SUCCEEDED" in res.output
    # the job trained from the attached, resolved config: the override reached the cluster
    assert (out / "config.yaml").is_file()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["steps"] == 4
    assert (out / "train" / "student" / "config.json").is_file()
    assert list((out / "train" / "student").glob("*.safetensors"))
    # `lead jobs logs` returns this job's log: Ray's entrypoint line names the attached config,
    # and every line of it is what --follow streamed
    logs = runner.invoke(app, ["jobs", "logs", job_id, "--address", with_token])
    assert logs.exit_code == 0, logs.output
    assert f"Running entrypoint for job {job_id}: lead train config.yaml --out {out}" in logs.output
    lines = [x for x in logs.output.splitlines() if x.strip()]
    assert len(lines) >= 2 and all(x in res.output for x in lines)
    status = runner.invoke(app, ["jobs", "status", job_id, "--address", with_token])
    assert status.output.strip() == "SUCCEEDED"
    listed = runner.invoke(app, ["jobs", "list", "--address", with_token])
    row = next(x for x in listed.output.splitlines() if x.startswith(job_id))
    assert "SUCCEEDED" in row and " train " in row


@pytest.mark.slow
@pytest.mark.ray
def test_doctor_runs_on_the_cluster_as_a_job(with_token):
    res = runner.invoke(app, ["doctor", str(TINY), "--address", with_token])
    assert res.exit_code == 0, res.output
    # the job joined the head with its token and counted the head's node and CPUs
    assert "nodes: 1   CPUs: 2   GPUs: 0" in res.output
    assert "verdict: READY" in res.output


@pytest.mark.slow
@pytest.mark.ray
def test_stop_ends_a_long_job(with_token, tmp_path):
    res = runner.invoke(
        app,
        [
            "submit",
            str(TINY),
            "--address",
            with_token,
            "--out",
            str(tmp_path / "long"),
            "--set",
            "train.steps=100000",
        ],
    )
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.output)
    assert _wait_state(with_token, job_id, {"RUNNING", "FAILED", "SUCCEEDED"}) == "RUNNING"
    stopped = runner.invoke(app, ["jobs", "stop", job_id, "--address", with_token])
    assert stopped.exit_code == 0, stopped.output
    assert f"job {job_id}: STOPPED" in stopped.output
    # following a stopped job ends at once with the STOPPED exit code
    followed = runner.invoke(app, ["jobs", "logs", job_id, "--follow", "--address", with_token])
    assert followed.exit_code == jobs.EXIT_CODES["STOPPED"] == 3, followed.output
    # and the student of 100000 steps was never written
    assert not (tmp_path / "long" / "train" / "student").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_wrong_token_is_refused_clearly(head, monkeypatch, tmp_path):
    url, _ = head
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    res = runner.invoke(app, ["submit", str(TINY), "--address", url, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert f"the cluster at {url} refused the token (from RAY_AUTH_TOKEN)" in res.output
    assert "Traceback" not in res.output
    # no token anywhere: a different, equally clear line
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    res = runner.invoke(app, ["jobs", "list", "--address", url])
    assert res.exit_code == 2
    assert f"the cluster at {url} requires a token and none was found" in res.output


@pytest.mark.slow
@pytest.mark.ray
def test_token_file_is_used(head, monkeypatch, tmp_path):
    url, token = head
    (tmp_path / "tok").write_text(token + "\n")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    res = runner.invoke(app, ["jobs", "list", "--address", url])
    assert res.exit_code == 0, res.output


@pytest.mark.slow
@pytest.mark.ray
def test_unknown_job_id_is_a_clear_error(with_token):
    res = runner.invoke(app, ["jobs", "logs", "raysubmit_nope", "--address", with_token])
    assert res.exit_code == 2
    assert "no job 'raysubmit_nope' on this cluster" in res.output


# ----------------------------------------------------------------------------- without a head


def test_unreachable_address_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    res = runner.invoke(app, ["submit", str(TINY), "--address", url, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert f"cannot reach a Ray cluster at {url}" in res.output


def test_missing_config_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["submit", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "nope.yaml: config file not found" in res.output


def test_ray_client_address_is_rejected_with_a_hint():
    with pytest.raises(jobs.JobsError, match="dashboard address"):
        jobs.resolve_address("ray://10.0.0.1:10001")
    assert jobs.resolve_address("10.0.0.1:8265") == "http://10.0.0.1:8265"


def test_find_token_follows_rays_precedence(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "tok").write_text("from-path")
    assert jobs.find_token({}, home) == ("from-home", str(home / ".ray" / "auth_token"))
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}
    assert jobs.find_token(env, home) == ("from-path", str(tmp_path / "tok"))
    env["RAY_AUTH_TOKEN"] = "from-env"
    assert jobs.find_token(env, home) == ("from-env", "RAY_AUTH_TOKEN")
    token, where = jobs.find_token({}, tmp_path / "nobody")
    assert token is None and "RAY_AUTH_TOKEN" in where


def test_entrypoints():
    assert jobs.entrypoint("train", "/abs/run") == "lead train config.yaml --out /abs/run"
    assert jobs.entrypoint("encode", "/a b") == "lead encode config.yaml --out '/a b'"
    # output in object storage goes through the mirroring runner
    assert (
        jobs.entrypoint("pipeline", "s3://b/run")
        == "lead jobs run pipeline config.yaml --out s3://b/run"
    )
    assert jobs.entrypoint("doctor", None) == "lead doctor config.yaml --address auto"
    assert (
        jobs.entrypoint("doctor", None, check_verb="train")
        == "lead doctor config.yaml --address auto --verb train"
    )
    with pytest.raises(jobs.JobsError, match="needs --out"):
        jobs.entrypoint("train", None)
    with pytest.raises(jobs.JobsError, match="unknown verb"):
        jobs.entrypoint("rm", "/x")


def test_job_dir_holds_the_resolved_config_only(tmp_path):
    cfg = load_config(TINY, ["train.steps=7"])
    folder = jobs.stage_job_dir(cfg, tmp_path)
    assert [p.name for p in folder.iterdir()] == ["config.yaml"]
    assert load_config(folder / "config.yaml") == cfg
    renv = jobs.runtime_env(
        folder,
        pip=["lead-ray==0.1.0"],
        wheel="dist/lead_ray-0.1.0-py3-none-any.whl",
        env_vars={"AWS_ENDPOINT_URL": "http://minio:9000"},
    )
    assert renv == {
        "working_dir": str(folder),
        "pip": [
            "lead-ray==0.1.0",
            "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/lead_ray-0.1.0-py3-none-any.whl",
        ],
        "env_vars": {"AWS_ENDPOINT_URL": "http://minio:9000"},
    }


def test_relative_local_paths_are_sent_absolute(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.jsonl").write_text("")
    cfg = load_config(
        TINY,
        [
            "data.corpus=data/corpus.jsonl",
            "data.queries=s3://b/q.jsonl",
            "teacher.model.build.tokenizer=all-MiniLM-L6-v2",
        ],
    )
    new, changed = jobs.localize_config(cfg, tmp_path)
    assert changed == ["data.corpus"]
    assert new.data.corpus == str(tmp_path / "data" / "corpus.jsonl")
    assert new.data.queries == "s3://b/q.jsonl"  # URIs and names that are not files stay
    assert new.teacher.model.build.tokenizer == "all-MiniLM-L6-v2"
