"""One CLI verb per stage (`lead prepare`, `lead mine`, ..., `lead report`), built from the stage
graph: every verb takes CONFIG, --out and --set; per-system stages take --system (a system name or
a model folder), per-split stages --split, stages with a Ray implementation --ray. Each verb is
`run_stage` on the run folder, then one line (or a few) saying what it wrote.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, ProgressOpt, SetOpt, open_run, run_guarded

SystemOpt = Annotated[
    str | None,
    typer.Option(
        "--system",
        "--model",
        help="A system (student, student-init, teacher, teacher-init) or a "
        "dual-encoder model folder. Default: encode.model (encode, index) or student.",
    ),
]
RunOpt = Annotated[
    Path,
    typer.Option("--run", help="The run file to re-rank: TREC, MS MARCO or Tevatron format."),
]
SplitOpt = Annotated[
    str | None, typer.Option(help="Query split (default: search.split, else data.eval_split).")
]
RayOpt = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Run it on Ray even when the config would "
        "not (a local Ray unless ray.address names a cluster).",
    ),
]


# What each verb prints when it is done; `folder` is the stage's first output (stages/graph.py).
DONE = {
    "prepare": "corpus: {folder}  ({corpus:,} docs); models: {models_dir}",
    "mine": "examples: {file}  ({examples} queries)",
    "cache-teacher": "teacher cache: {folder}  ({queries} queries, {passages} passages, "
    "{layers} layers)",
    "train": "student: {folder}/{selected}  ({stopped_at} of {steps} steps{why})",
    "encode": "embeddings: {folder}  ({rows:,} rows, {n_shards} shards, dim {dim}, {dtype}; "
    "encoded now: {n_encoded} shards{rate})",
    "index": "index: {folder}  ({factory}, {n_shards} shards)",
}


def _show(name: str, run, result: dict[str, Any], system: str | None, split: str | None) -> None:
    """What a verb prints when it is done."""
    from lead_ray.stages.dispatch import target_of
    from lead_ray.stages.graph import stage

    if name == "search":
        return _show_search(run, result, system, split)
    if name == "rerank":
        typer.echo(f"run: {run.layout.reranked}  ({result['queries']} queries, {result['mode']})")
        for metric, value in (result.get("metrics") or {}).items():
            typer.echo(f"  {metric:<10} {value:.4f}")
        return None
    if name == "report":
        from lead_ray.cli.pipeline_cmd import headline

        return headline(run, result)
    if name == "index" and result["plan"] is not None:
        from lead_ray.corpus.planner import format_plan

        typer.echo(format_plan(result["plan"]), err=True)
    st = stage(name)
    last = result.get("last_run") or {}
    fields = {
        **result,
        "folder": st.outputs(run, target_of(run, st, system, split))[0],
        "models_dir": run.layout.root / "models",
        "n_shards": len(result.get("shards", [])),
        "n_encoded": len(last.get("encoded", [])),
        "rate": f", {last['docs_per_s']:,.1f} docs/s" if last.get("docs_per_s") else "",
        "selected": result.get("selected", "student"),
        "stopped_at": result.get("stopped_at", result.get("steps")),
        "why": f"; {result['selection']['why']}" if result.get("selection") else "",
    }
    typer.echo(DONE[name].format(**fields))


def _show_search(run, summary: dict, system: str, split: str) -> None:
    from lead_ray.stages.dispatch import run_stage

    name = run.system(system).name
    typer.echo(f"run: {run.layout.run_file(name, split)}  ({summary['queries']} queries)")
    if run.has_qrels(split):
        evaluated = run_stage(run, "evaluate", system, split)
        for metric, value in evaluated["metrics"].items():
            typer.echo(f"  {metric:<10} {value:.4f}")
    if summary.get("ann_recall") is not None:
        typer.echo(f"  ann_recall@{summary['k']} vs exact: {summary['ann_recall']:.4f}")


def _default_system(name: str, run, system: str | None) -> str | None:
    """`--system`, else `encode.model` for the corpus verbs."""
    return run.encode_system(system) if name in ("encode", "index", "search") else system


def _verb(name: str, summary: str, per_system: bool, per_split: bool, has_ray: bool):
    """The Typer callback of one stage verb, with exactly the options that stage takes."""

    def command(
        config: Path,
        out: Path,
        overrides: list[str] | None = None,
        progress: bool = True,
        system: str | None = None,
        split: str | None = None,
        ray: bool = False,
        first_stage: Path | None = None,
    ) -> None:
        from lead_ray.config import save_resolved
        from lead_ray.stages.dispatch import run_stage

        if first_stage is not None:  # `lead rerank --run RUN`
            overrides = [*(overrides or []), f"search.first_stage={first_stage.resolve()}"]
        run = open_run(config, out, overrides, progress)

        def go():
            save_resolved(run.cfg, run.layout.root)  # what ran here last
            target = _default_system(name, run, system)
            result = run_stage(run, name, target, split, ray=True if ray else None)
            return target, result

        target, result = run_guarded(go)
        _show(name, run, result, target, split or run.eval_split)

    params = [
        inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ConfigArg),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=OutOpt),
        inspect.Parameter(
            "overrides", inspect.Parameter.KEYWORD_ONLY, annotation=SetOpt, default=None
        ),
        inspect.Parameter(
            "progress", inspect.Parameter.KEYWORD_ONLY, annotation=ProgressOpt, default=True
        ),
    ]
    for flag, pname, annotation, default in (
        (per_system, "system", SystemOpt, None),
        (per_split, "split", SplitOpt, None),
        (has_ray, "ray", RayOpt, False),
        (name == "rerank", "first_stage", RunOpt, ...),
    ):
        if flag:
            params.append(
                inspect.Parameter(
                    pname, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
                )
            )
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = summary[0].upper() + summary[1:] + "."
    command.__name__ = name.replace("-", "_")
    return command


def register(app: typer.Typer) -> None:
    from lead_ray.stages.graph import STAGES

    for st in STAGES.values():
        if st.name == "evaluate":  # `lead search` evaluates; `lead evaluate RUN QRELS` scores files
            continue
        app.command(name=st.name)(
            _verb(
                st.name,
                st.summary,
                st.per_system and st.name != "report",
                st.per_split,
                st.ray is not None,
            )
        )
