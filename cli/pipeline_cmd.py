"""`lead pipeline`, `lead quickstart` and `lead mine`."""

from __future__ import annotations

from pathlib import Path

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, SetOpt, fail, load, run_guarded


def _headline(out: Path, headline: dict) -> None:
    typer.echo(f"\nreport: {out / 'report.md'}")
    for system, metrics in headline.items():
        values = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        typer.echo(f"  {system:<13} {values}")


def register(app: typer.Typer) -> None:
    @app.command()
    def pipeline(config: ConfigArg, out: OutOpt, overrides: SetOpt = None,
                 progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
        """mine -> train (LEAD) -> encode -> index -> search -> evaluate -> report.md.

        Stages whose outputs are complete are skipped; rerun on the same --out to finish a run."""
        from lead_ray.pipeline import run_pipeline

        cfg = load(config, overrides)
        _headline(out, run_guarded(run_pipeline, cfg, out, progress=progress))

    @app.command()
    def quickstart(out: OutOpt = Path("runs/quickstart"), overrides: SetOpt = None,
                   progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
        """The whole pipeline on the embedded default: bundled sample collection, the packaged
        all-MiniLM-L6-v2 as teacher, a 2-layer student, local CPU."""
        from lead_ray.pipeline import run_pipeline
        from lead_ray.resources import resource_path

        cfg = load(resource_path("quickstart.yaml"), overrides)
        _headline(out, run_guarded(run_pipeline, cfg, out, progress=progress))

    @app.command()
    def mine(config: ConfigArg, out: OutOpt, overrides: SetOpt = None,
             model: Path = typer.Option(None, help="Dual-encoder folder to mine with (default: "
                                        "the teacher, or the initial student for other teachers)."),
             progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
        """Hard negatives: top-k per training query, every positive dropped -> DIR/mine/examples.jsonl."""
        from lead_ray.data.prepare import open_corpus, resolve_data
        from lead_ray.mining import mine as run_mine
        from lead_ray.pipeline import _mining_model, materialize_initial_models

        cfg = load(config, overrides)

        def go() -> Path:
            paths = resolve_data(cfg.data, out)
            store = open_corpus(paths, out / "corpus")
            models = materialize_initial_models(cfg, out / "models")
            folder = model or _mining_model(cfg, models)
            if not Path(folder).is_dir():
                fail(f"--model {folder}: no such folder")
            return run_mine(cfg, out / "mine", store, paths, str(folder),
                            teacher_folder=str(models["teacher-init"]), progress=progress)

        typer.echo(f"examples: {run_guarded(go)}")
