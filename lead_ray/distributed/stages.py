"""The stages that can run on Ray, each bound to the run folder like its local twin in
lead_ray/stages/steps.py: Ray Train for `train`, Ray Data for `encode`, one Ray task per shard
for `index` and `search`. `lead_ray.stages.dispatch` picks these and has started Ray.
"""

from __future__ import annotations

from lead_ray.stages.graph import Target
from lead_ray.stages.run import Run


def train(run: Run, target: Target) -> dict:
    from lead_ray.distributed.train import run_training
    from lead_ray.stages.steps import trained

    return trained(run, run_training(run))


def encode(run: Run, target: Target) -> dict:
    from lead_ray.distributed.encode import run_encoding

    system = run.system(target.system)
    return run_encoding(
        run.cfg,
        system.folder,
        run.store.folder,
        run.layout.embeddings(system.key),
        progress=run.progress,
    )


def index(run: Run, target: Target) -> dict:
    from lead_ray.distributed.index import run_indexing
    from lead_ray.stages.steps import index_plan

    plan = index_plan(run, target)
    key = run.system(target.system).key
    return run_indexing(run.cfg, run.layout.embeddings(key), run.layout.index(key)) | {"plan": plan}


def search(run: Run, target: Target) -> dict:
    from lead_ray.distributed.index import run_search_parallel
    from lead_ray.stages.steps import search as search_here

    return search_here(run, target, searcher=run_search_parallel)
