"""`lead doctor`: what this machine or a Ray cluster offers, and whether a config fits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lead_ray.cli.common import SUBMIT_VERBS, SetOpt, check_verb, fail, load


def _cluster_facts(address: str):
    """Join the cluster at a Ray address (auto, ray://, host:port) and read its facts."""
    import ray
    from ray.exceptions import AuthenticationError

    from lead_ray.distributed.doctor import cluster_facts

    if address != "auto":  # Ray's client retries an unreachable address for minutes
        from lead_ray.cli.jobs_cmd import guarded
        from lead_ray.distributed.jobs import probe

        guarded(probe, address)
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError, AuthenticationError) as err:
            fail(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}")
    try:
        return cluster_facts()
    finally:
        if started:
            ray.shutdown()


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        config: Annotated[Path | None, typer.Argument(help="Experiment YAML to check.")] = None,
        address: Annotated[
            str | None,
            typer.Option(
                "--address",
                "-a",
                help="A cluster: its "
                "dashboard URL (http://HOST:8265, runs the check as a job there) or "
                "a Ray address (auto, ray://HOST:10001). Default: this machine.",
            ),
        ] = None,
        verb: Annotated[
            str | None,
            typer.Option(
                help="Check what one verb needs (the verbs `lead submit --verb` takes: "
                f"{', '.join(SUBMIT_VERBS)}); default: the whole pipeline.",
                callback=check_verb,
            ),
        ] = None,
        overrides: SetOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
    ) -> None:
        """Ray version and address, nodes, CPUs/GPUs, torch/CUDA/bf16, faiss build, DeepSpeed
        ops; given a config, what it needs and a verdict (exit code 1 when NOT READY)."""
        from lead_ray.distributed import doctor as dr

        cfg = load(config, overrides) if config is not None else None
        if address and address.startswith(("http://", "https://")):
            from lead_ray.cli.jobs_cmd import follow_and_exit, guarded
            from lead_ray.distributed import jobs

            client = guarded(jobs.connect, address)
            job_id = guarded(jobs.submit, client, cfg, "doctor", None, check_verb=verb)
            typer.echo(f"submitted {job_id} to {address}")
            follow_and_exit(client, job_id)
        facts = _cluster_facts(address) if address else dr.local_facts()
        checks = dr.check(cfg, facts, verb=verb, cluster=bool(address)) if cfg else None
        if as_json:
            out = facts.to_dict()
            if checks is not None:
                out["needs"] = dr.needs(cfg, verb)
                out["checks"] = [{"ok": c.ok, "text": c.text} for c in checks]
                out["verdict"] = dr.verdict(checks)
            typer.echo(json.dumps(out, indent=2))
        else:
            typer.echo(
                dr.format_report(
                    facts, checks, cfg.name if cfg else "", dr.needs(cfg, verb) if cfg else None
                )
            )
        if checks is not None and dr.verdict(checks) == "NOT READY":
            raise typer.Exit(1)
