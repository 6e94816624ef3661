"""`lead evaluate RUN QRELS`: score a run file against qrels and print a table (optionally JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lead_ray.cli.common import fail, run_guarded


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        run: Annotated[
            Path,
            typer.Argument(
                help="Run file: TREC (6 columns), MS MARCO (qid pid rank) "
                "or Tevatron (qid pid score)."
            ),
        ],
        qrels: Annotated[Path, typer.Argument(help="Qrels: BEIR tsv (with header) or TREC qrels.")],
        metrics: Annotated[
            list[str] | None,
            typer.Option(
                "--metrics",
                "-m",
                help="Metric, repeatable (nDCG@10, RR@10, R@100, AP, AP(rel=2), P@10). "
                "Default: the evaluate.metrics default (nDCG@10, RR@10, R@100, AP).",
            ),
        ] = None,
        trec_dl: Annotated[
            bool,
            typer.Option(
                "--trec-dl", help="TREC DL convention: grade >= 2 is relevant for AP, R@k and RR@k."
            ),
        ] = False,
        json_out: Annotated[
            Path | None,
            typer.Option(
                "--json", help="Also write aggregate and per-query values to this JSON file."
            ),
        ] = None,
    ) -> None:
        """Evaluate a run with trec_eval semantics (ties broken by doc id, as trec_eval does)."""
        from rich.console import Console

        from lead_ray.config import EvaluateConfig
        from lead_ray.evaluation.metrics import evaluate, format_table, parse_metrics
        from lead_ray.storage import atomic_write_json

        names = metrics or EvaluateConfig().metrics
        try:
            parse_metrics(names, trec_dl)
        except ValueError as err:
            fail(str(err))
        results = run_guarded(evaluate, run, qrels, names, trec_dl=trec_dl)
        Console().print(format_table(results, title=f"{run.name} vs {qrels.name}"))
        if json_out is not None:
            atomic_write_json(
                json_out, {"run": str(run), "qrels": str(qrels), "trec_dl": trec_dl, **results}
            )
            typer.echo(f"wrote {json_out}")
