"""`lead pipeline`: every stage in order on one run folder, then the run card.

    prepare -> mine -> [cache-teacher] -> train
            -> for each system: encode -> index -> search -> evaluate   (dual encoders)
                                search (re-rank the student's run) -> evaluate   (others)
            -> report

Three systems are evaluated on the same queries: the distilled student, the same student before
training (its initialisation), and the teacher (before and after, when it trained). Every stage
resumes or skips what is complete (lead_ray/stages/graph.py), so a rerun on the same folder
finishes a killed run and redoes nothing else.
"""

from __future__ import annotations

from lead_ray.config import save_resolved
from lead_ray.stages.dispatch import run_stage
from lead_ray.stages.run import Run


def run_pipeline(run: Run) -> dict:
    """Run every stage that is not complete yet; returns the headline metrics."""
    run.layout.root.mkdir(parents=True, exist_ok=True)
    save_resolved(run.cfg, run.layout.root)
    run_stage(run, "prepare")
    if run.needs_mining():
        run_stage(run, "mine")
    if run.cfg.teacher.cache is True:
        run_stage(run, "cache-teacher")
    run_stage(run, "train")
    for name in run.evaluated_systems():
        evaluate_system(run, name, run.eval_split)
    return run_stage(run, "report")


def evaluate_system(run: Run, system: str, split: str) -> dict:
    """One system on one split: encode and index it (a dual encoder), search, evaluate; returns
    the evaluation (eval/<system>/<split>.json). Every step skips what is complete."""
    if run.is_dual_encoder(run.system(system)):
        run_stage(run, "encode", system)
        run_stage(run, "index", system)
    run_stage(run, "search", system, split)
    return run_stage(run, "evaluate", system, split)
