"""Ray Jobs: submit a `lead` verb with its resolved config to a cluster; list, watch, stop.

A submission is `lead <verb> config.yaml --out OUT` run on the cluster. The config is resolved
here (YAML + `--set`), written as the only file of a temporary working dir and uploaded with the
job; the cluster runs the lead-ray installed on its image (or pip requirements / a wheel
shipped in the runtime env). When OUT is a URI (s3://, gs://) the job runs through
`lead jobs run`, which mirrors OUT on the node's disk and pushes it back while the verb runs
and when it ends, manifests last.

Token authentication (Ray >= 2.52): the token is read like Ray's own clients read it:
`RAY_AUTH_TOKEN`, else the file named by `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`,
and sent as `Authorization: Bearer ...`.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lead_ray.config import Config
from lead_ray.stages.graph import VERBS as STAGE_VERBS
from lead_ray.storage import is_uri, mirrored

VERBS = (*STAGE_VERBS, "pipeline", "doctor")
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3}  # `--follow` exits with these


class JobsError(RuntimeError):
    """A cluster problem the user can fix (address, token, job id); one line, no traceback."""


# ----------------------------------------------------------------------------- address and token


def resolve_address(address: str | None) -> str:
    """The dashboard URL of the Jobs API: the given address, `RAY_API_SERVER_ADDRESS`, an http
    `RAY_ADDRESS`, or http://127.0.0.1:8265. `host:port` gets `http://`."""
    if not address:
        env = os.environ.get("RAY_ADDRESS", "")
        address = os.environ.get("RAY_API_SERVER_ADDRESS") or (
            env if env.startswith(("http://", "https://")) else DEFAULT_ADDRESS
        )
    if address.startswith("ray://") or address == "auto":
        raise JobsError(
            f"{address}: the Jobs API needs the dashboard address, "
            "e.g. http://127.0.0.1:8265 (port-forward the head's port 8265)"
        )
    if "://" not in address:
        address = f"http://{address}"
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobsError(f"{address}: expected http://HOST:PORT (the Ray dashboard)")
    return address.rstrip("/")


def find_token(
    env: dict[str, str] | None = None, home: Path | None = None
) -> tuple[str | None, str]:
    """The auth token and where it came from, in Ray's order of precedence.

    Returns:
        (token, source); token is None when none is set (source then says where we looked).
    """
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = (
        Path(env["RAY_AUTH_TOKEN_PATH"])
        if env.get("RAY_AUTH_TOKEN_PATH")
        else ((home or Path.home()) / ".ray" / "auth_token")
    )
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip(), str(path)
    return None, f"RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or {path}"


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear `JobsError` when nothing listens at `address` (a URL or
    HOST:PORT); Ray's own clients retry for minutes first."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise JobsError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or err}); is "
            "the head up and its port forwarded (see cluster/README.md)?"
        ) from None


def connect(address: str | None = None, token: str | None = None):
    """A `JobSubmissionClient` for the cluster; every failure becomes one clear `JobsError`.

    Args:
        address: dashboard URL (see `resolve_address`).
        token: the auth token; default `find_token()`.
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    source = "given"
    if token is None:
        token, source = find_token()
    probe(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return JobSubmissionClient(url, headers=headers)
    except AuthenticationError as err:
        detail = err.message.splitlines()[0]
        if token is None:
            raise JobsError(
                f"the cluster at {url} requires a token and none was found "
                f"(looked in {source}): {detail}"
            ) from None
        raise JobsError(
            f"the cluster at {url} refused the token (from {source}): {detail}"
        ) from None
    except ConnectionError as err:
        raise JobsError(f"cannot reach a Ray cluster at {url}: {err}") from None
    except RuntimeError as err:
        raise JobsError(f"{url} answered but not as a Ray Jobs API: {err}") from None


def _call(fn: Callable[..., Any], job_id: str, *args: Any) -> Any:
    """Run one SDK call for `job_id`; an unknown id or a lost cluster becomes a `JobsError`."""
    try:
        return fn(job_id, *args)
    except OSError as err:  # requests' ConnectionError is an OSError
        raise JobsError(f"lost contact with the cluster: {err}") from None
    except RuntimeError as err:
        if "404" in str(err) or "does not exist" in str(err):
            raise JobsError(f"no job {job_id!r} on this cluster (see `lead jobs list`)") from None
        raise


# ----------------------------------------------------------------------------- submission


def absolutize_paths(data: Any, base: Path) -> list[str]:
    """Rewrite, in place, relative string values that name existing local files or folders to
    absolute paths: the job runs in another directory. Returns the keys rewritten."""
    changed = []

    def walk(node: Any, prefix: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            name = f"{prefix}{key}"
            if isinstance(value, (dict, list)):
                walk(value, name + ".")
            elif (
                isinstance(value, str)
                and value
                and not is_uri(value)
                and not Path(value).is_absolute()
                and (base / value).exists()
            ):
                node[key] = str((base / value).resolve())
                changed.append(name)

    walk(data, "")
    return changed


def localize_config(cfg: Config, base: str | os.PathLike) -> tuple[Config, list[str]]:
    """`cfg` with relative local paths made absolute against `base` (see `absolutize_paths`)."""
    data = cfg.to_dict()
    changed = absolutize_paths(data, Path(base))
    return Config.from_dict(data, source="resolved config"), changed


def entrypoint(
    verb: str,
    out: str | None,
    *,
    config_file: str | None = "config.yaml",
    check_verb: str | None = None,
) -> str:
    """The shell command the job runs; OUT as a URI goes through the mirroring `lead jobs run`.
    `check_verb`: the verb a `doctor` job checks (`lead doctor --verb`)."""
    for v in (verb, check_verb or verb):
        if v not in VERBS:
            raise JobsError(f"unknown verb {v!r}; choose one of {', '.join(VERBS)}")
    if verb == "doctor":
        checked = ["--verb", check_verb] if check_verb else []
        return " ".join(
            ["lead", "doctor", *([config_file] if config_file else []), "--address", "auto",
             *checked]
        )  # fmt: skip
    if not out:
        raise JobsError(f"`{verb}` needs --out (a local path on the cluster, or s3:// / gs://)")
    if is_uri(out):
        return f"lead jobs run {verb} {config_file} --out {shlex.quote(out)}"
    return f"lead {verb} {config_file} --out {shlex.quote(out)}"


def runtime_env(
    job_dir: str | os.PathLike,
    *,
    pip: Iterable[str] = (),
    wheel: str | None = None,
    env_vars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The job's runtime env: the staged working dir, pip requirements (a shipped wheel is
    installed from the working dir) and environment variables."""
    pip = list(pip)
    if wheel:
        pip.append("${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/" + Path(wheel).name)
    renv: dict[str, Any] = {"working_dir": str(job_dir)}
    if pip:
        renv["pip"] = pip
    if env_vars:
        renv["env_vars"] = dict(env_vars)
    return renv


def stage_job_dir(cfg: Config | None, folder: str | os.PathLike, wheel: str | None = None) -> Path:
    """Write the resolved config (and the wheel, if shipped) into an empty working dir."""
    folder = Path(folder)
    if cfg is not None:
        (folder / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    if wheel:
        if not Path(wheel).is_file():
            raise FileNotFoundError(f"{wheel}: no such wheel file")
        shutil.copy2(wheel, folder / Path(wheel).name)
    return folder


def driver_resources(cfg: Config | None, verb: str) -> dict[str, float]:
    """What the job's driver reserves: a local-backend `train` trains in the driver, so it
    takes a CPU (and a GPU when asked) and lands on a node that has them."""
    if cfg is not None and verb == "train" and cfg.train.backend == "local":
        return {"entrypoint_num_cpus": 1, "entrypoint_num_gpus": 1 if cfg.train.use_gpu else 0}
    return {}


def submit(
    client,
    cfg: Config | None,
    verb: str,
    out: str | None,
    *,
    pip: Iterable[str] = (),
    wheel: str | None = None,
    env_vars: dict[str, str] | None = None,
    name: str | None = None,
    check_verb: str | None = None,
) -> str:
    """Submit `lead <verb>` with `cfg` attached through a `connect()`ed client; returns the job id.

    `cfg` may be None only for `doctor` (a check of the cluster without a config), whose
    `check_verb` is the verb it checks.
    """
    if cfg is None and verb != "doctor":
        raise JobsError(f"`{verb}` needs a config")
    command = entrypoint(
        verb, out, config_file="config.yaml" if cfg is not None else None, check_verb=check_verb
    )
    with tempfile.TemporaryDirectory(prefix="lead-job-") as tmp:
        stage_job_dir(cfg, tmp, wheel)
        metadata = {
            "lead_verb": verb,
            "lead_config": cfg.name if cfg else "",
            "lead_out": out or "",
        }
        submission_id = f"{name}-{uuid.uuid4().hex[:8]}" if name else None
        return client.submit_job(
            entrypoint=command,
            submission_id=submission_id,
            runtime_env=runtime_env(tmp, pip=pip, wheel=wheel, env_vars=env_vars),
            metadata=metadata,
            **driver_resources(cfg, verb),
        )


# ----------------------------------------------------------------------------- watching


def status(client, job_id: str) -> str:
    return str(_call(client.get_job_status, job_id))


def logs(client, job_id: str) -> str:
    return _call(client.get_job_logs, job_id)


def stop(client, job_id: str) -> bool:
    """Ask the job to stop (SIGTERM, then SIGKILL); True if it was running."""
    return bool(_call(client.stop_job, job_id))


def list_jobs(client) -> list[dict[str, Any]]:
    """Every job the cluster knows, newest first, as plain dicts."""
    rows = []
    for job in client.list_jobs():
        rows.append(
            {
                "id": job.submission_id or job.job_id,
                "status": str(job.status),
                "verb": (job.metadata or {}).get("lead_verb", ""),
                "start": job.start_time or 0,
                "entrypoint": job.entrypoint,
                "message": job.message or "",
            }
        )
    return sorted(rows, key=lambda r: -r["start"])


def wait(client, job_id: str, *, poll: float = 0.5) -> str:
    """Block until the job reaches a terminal status; returns it."""
    while (state := status(client, job_id)) not in TERMINAL:
        time.sleep(poll)
    return state


def follow(client, job_id: str, echo: Callable[[str], None]) -> str:
    """Stream the job's logs to `echo` until it ends; returns its terminal status."""
    _call(client.get_job_info, job_id)  # a clear error for an unknown id before streaming

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            echo(chunk)

    try:
        asyncio.run(tail())
    except (RuntimeError, OSError) as err:  # the stream broke; the status still tells the end
        echo(f"\n[log stream closed: {err}]\n")
    return wait(client, job_id)


# ----------------------------------------------------------------------------- on the cluster


def run_mirrored(
    verb: str,
    config: str | os.PathLike,
    out: str,
    overrides: Iterable[str] = (),
    *,
    sync_every: float = 60.0,
) -> int:
    """Run `lead <verb> CONFIG --out LOCAL` with LOCAL a mirror of `out` (a URI or a path).

    The mirror starts as a copy of what `out` holds, so a rerun resumes; while the verb runs,
    finished files are pushed every `sync_every` seconds (a lost node loses at most that much),
    and once more when it ends, whatever its exit code, manifests last. SIGTERM (`lead jobs
    stop`) reaches the verb through the job's process group; this process then makes the final
    push before Ray's SIGKILL (`RAY_JOB_STOP_WAIT_TIME_S`, 3 s by default). Returns the verb's
    exit code.
    """
    sets = [arg for item in overrides for arg in ("--set", item)]
    with mirrored(out) as mirror:
        cmd = [
            sys.executable,
            "-c",
            "from lead_ray.cli.main import main; main()",
            verb,
            str(config),
            "--out",
            str(mirror.path),
            *sets,
        ]
        proc = subprocess.Popen(cmd)
        # on SIGTERM: pass it on and stay alive for the final push
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            while True:
                try:
                    return proc.wait(timeout=sync_every)
                except subprocess.TimeoutExpired:
                    mirror.push()
        finally:
            signal.signal(signal.SIGTERM, previous)
