"""`lead train`: LEAD distillation, in this process or on Ray Train workers."""

from __future__ import annotations

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, SetOpt, load, run_guarded


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: ConfigArg,
        out: OutOpt,
        overrides: SetOpt = None,
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Distil the teacher into the student; resumes from the newest checkpoint in --out."""
        cfg = load(config, overrides)
        if cfg.train.backend == "ray":
            from lead_ray.distributed.train import run_training

            result = run_guarded(run_training, cfg, out, progress=progress)
        else:
            from lead_ray.training import fit_local

            result = run_guarded(fit_local, cfg, out, progress=progress)
        typer.echo(f"student: {out / 'student'}  ({result.get('steps')} steps)")
