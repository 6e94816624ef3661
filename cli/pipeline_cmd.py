"""`lead pipeline` and `lead quickstart`: every stage in order on one run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, ProgressOpt, SetOpt, load, open_run, run_guarded


def headline(run, metrics: dict) -> None:
    """The run card's path and each system's headline metrics."""
    typer.echo(f"\nreport: {run.layout.report}")
    for system, values in metrics.items():
        typer.echo(f"  {system:<13} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))


def _status(run) -> None:
    from lead_ray.stages.dispatch import status

    for name, done in status(run, run.evaluated_systems(), run.eval_split).items():
        typer.echo(f"  {'done' if done else 'todo':<5} {name}")


def register(app: typer.Typer) -> None:
    @app.command()
    def pipeline(
        config: ConfigArg,
        out: OutOpt,
        overrides: SetOpt = None,
        progress: ProgressOpt = True,
        status: bool = typer.Option(
            False, "--status", help="Only list which stages of --out are complete."
        ),
    ) -> None:
        """prepare -> mine -> train (LEAD) -> encode -> index -> search -> evaluate -> report.md.

        Stages whose outputs are complete are skipped; rerun on the same --out to finish a run."""
        from lead_ray.stages.pipeline import run_pipeline

        run = open_run(config, out, overrides, progress)
        if status:
            return run_guarded(_status, run)
        headline(run, run_guarded(run_pipeline, run))

    @app.command()
    def quickstart(
        out: OutOpt = Path("runs/quickstart"),
        overrides: SetOpt = None,
        progress: ProgressOpt = True,
    ) -> None:
        """The whole pipeline on the embedded default: bundled sample collection, the packaged
        all-MiniLM-L6-v2 as teacher, a 2-layer student, local CPU."""
        from lead_ray.resources import resource_path
        from lead_ray.stages.pipeline import run_pipeline
        from lead_ray.stages.run import Run

        run = Run(load(resource_path("quickstart.yaml"), overrides), out, progress=progress)
        headline(run, run_guarded(run_pipeline, run))
