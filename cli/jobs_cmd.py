"""`lead submit` and `lead jobs list|status|logs|stop|run`: run verbs on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from lead_ray.cli.common import SUBMIT_VERBS, ConfigArg, SetOpt, check_verb, fail, load, user_errors

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        "-a",
        help="Ray dashboard URL, e.g. http://127.0.0.1:8265 "
        "(default: $RAY_API_SERVER_ADDRESS, an http $RAY_ADDRESS, or that URL).",
    ),
]
JobArg = Annotated[str, typer.Argument(help="Job (submission) id, as `lead submit` printed it.")]

jobs_app = typer.Typer(help="List, watch and stop jobs on a Ray cluster.", no_args_is_help=True)


def guarded(fn, *args, **kwargs):
    """Call `fn`; cluster and input problems become one clear line and exit code 2."""
    from lead_ray.distributed.jobs import JobsError

    try:
        return fn(*args, **kwargs)
    except (JobsError, *user_errors()) as err:
        fail(str(err))


def _out_for_cluster(out: str | None, address: str) -> str | None:
    """Local OUT paths become absolute (the job runs in another directory)."""
    from lead_ray.storage import is_uri

    if not out or is_uri(out):
        return out
    host = urlsplit(address).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: --out {out} is a local path; on a multi-node cluster use "
            "s3:// or gs:// (or a filesystem every node mounts)",
            err=True,
            fg=typer.colors.YELLOW,
        )
    return str(Path(out).expanduser().resolve())


def follow_and_exit(client, job_id: str) -> None:
    from lead_ray.distributed import jobs

    try:
        state = guarded(jobs.follow, client, job_id, lambda s: typer.echo(s, nl=False))
    except KeyboardInterrupt:
        typer.echo(f"\nstopped following; the job goes on (lead jobs stop {job_id})", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"job {job_id}: {state}")
    raise typer.Exit(jobs.EXIT_CODES[state])


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--env {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        config: ConfigArg,
        address: AddressOpt = None,
        out: Annotated[
            str | None,
            typer.Option(
                "--out",
                "-o",
                help="Output folder on the cluster: s3://..., gs://..., or a path every node sees.",
            ),
        ] = None,
        verb: Annotated[
            str,
            typer.Option(
                help=f"The verb to run there: {', '.join(SUBMIT_VERBS)}.", callback=check_verb
            ),
        ] = "train",
        overrides: SetOpt = None,
        follow: Annotated[
            bool,
            typer.Option(
                help="Stream the logs until the job ends and exit "
                "with its status (0 SUCCEEDED, 1 FAILED, 3 STOPPED)."
            ),
        ] = False,
        pip: Annotated[
            list[str] | None,
            typer.Option(
                help="A pip requirement for the job's "
                "runtime env (repeatable), e.g. lead-ray==0.1.0."
            ),
        ] = None,
        wheel: Annotated[
            Path | None,
            typer.Option(
                help="A lead-ray wheel to ship and install (`pip wheel . -w dist --no-deps`)."
            ),
        ] = None,
        env: Annotated[
            list[str] | None,
            typer.Option(help="KEY=VALUE set in the job (repeatable), e.g. AWS_ENDPOINT_URL=..."),
        ] = None,
        name: Annotated[str | None, typer.Option(help="Prefix of the job id.")] = None,
    ) -> None:
        """Submit `lead VERB` with the resolved config to a Ray cluster; prints the job id."""
        from lead_ray.distributed import jobs

        cfg = load(config, overrides)
        url = guarded(jobs.resolve_address, address)
        cfg, changed = guarded(jobs.localize_config, cfg, Path.cwd())
        for key in changed:
            typer.secho(f"note: {key} is a local path, sent as {_lookup(cfg, key)}", err=True)
        out = _out_for_cluster(out, url)
        guarded(jobs.entrypoint, verb, out)  # a bad verb or a missing --out fails before connecting
        client = guarded(jobs.connect, url)
        job_id = guarded(
            jobs.submit,
            client,
            cfg,
            verb,
            out,
            pip=pip or [],
            wheel=str(wheel) if wheel else None,
            env_vars=_pairs(env),
            name=name,
        )
        typer.echo(f"submitted {job_id} to {url}")
        if follow:
            follow_and_exit(client, job_id)
        typer.echo(f"watch: lead jobs logs {job_id} --follow --address {url}")

    @jobs_app.command("list")
    def list_(address: AddressOpt = None) -> None:
        """Jobs on the cluster, newest first."""
        from lead_ray.distributed import jobs

        rows = guarded(lambda: jobs.list_jobs(jobs.connect(address)))
        for r in rows:
            typer.echo(f"{r['id']:<36} {r['status']:<10} {r['verb'] or '-':<9} {r['entrypoint']}")
        if not rows:
            typer.echo("no jobs")

    @jobs_app.command()
    def status(job_id: JobArg, address: AddressOpt = None) -> None:
        """The job's status: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        from lead_ray.distributed import jobs

        typer.echo(guarded(lambda: jobs.status(jobs.connect(address), job_id)))

    @jobs_app.command()
    def logs(
        job_id: JobArg,
        address: AddressOpt = None,
        follow: Annotated[
            bool,
            typer.Option(
                help="Stream until the job ends; exit with "
                "its status (0 SUCCEEDED, 1 FAILED, 3 STOPPED)."
            ),
        ] = False,
    ) -> None:
        """The job's driver log (stdout and stderr)."""
        from lead_ray.distributed import jobs

        client = guarded(jobs.connect, address)
        if follow:
            follow_and_exit(client, job_id)
        typer.echo(guarded(jobs.logs, client, job_id), nl=False)

    @jobs_app.command()
    def stop(
        job_id: JobArg,
        address: AddressOpt = None,
        wait: Annotated[bool, typer.Option(help="Wait until it has stopped.")] = True,
    ) -> None:
        """Stop a job (SIGTERM to its driver, then SIGKILL)."""
        from lead_ray.distributed import jobs

        client = guarded(jobs.connect, address)
        was_running = guarded(jobs.stop, client, job_id)
        state = jobs.wait(client, job_id) if wait else jobs.status(client, job_id)
        typer.echo(f"job {job_id}: {state}" + ("" if was_running else " (it was not running)"))

    @jobs_app.command()
    def run(
        verb: Annotated[str, typer.Argument(help="The lead verb to run.")],
        config: ConfigArg,
        out: Annotated[str, typer.Option("--out", "-o", help="Output folder or URI.")],
        overrides: SetOpt = None,
    ) -> None:
        """Run `lead VERB` with --out mirrored from/to a URI (s3://, gs://): what a submitted
        job runs when its output lives in object storage."""
        from lead_ray.distributed.jobs import run_mirrored

        raise typer.Exit(guarded(run_mirrored, verb, config, out, overrides or []))

    app.add_typer(jobs_app, name="jobs")


def _lookup(cfg, key: str) -> str:
    node = cfg.to_dict()
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return str(node)
