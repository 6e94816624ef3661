"""The stages of lead-ray, declared once: what each runs, reads and writes, and where it can run.

    prepare ─▶ mine ─▶ [cache-teacher] ─▶ train ─▶ encode ─▶ index ─▶ search ─▶ evaluate ─▶ report
                                                 (per system)      (per system and split)

Every CLI verb is one stage (`lead train` = train, ...), `lead pipeline` runs them in order,
`lead submit` sends one to a cluster, and benchmarks call them through `run_stage`
(lead_ray/stages/dispatch.py). A stage's implementation in this process is a function in
`lead_ray/stages/steps.py`; a stage that can use Ray has a second one in
`lead_ray/distributed/stages.py`, chosen by `on_ray(config)` or the verb's `--ray`.

Completeness: prepare, mine, train, encode and index keep manifests and resume or skip by
themselves (they are always called). Search and evaluate write plain files, so they are
*stamped*: after a run the dispatcher records a digest of their `inputs` and `settings`, and skips
them while both are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lead_ray.config import Config
from lead_ray.stages.layout import INITIAL
from lead_ray.stages.run import Run


@dataclass(frozen=True)
class Target:
    """What a per-system / per-split stage works on (None for the others): a system name
    (`student`, `teacher`, ...) or a model folder, and a split."""

    system: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str  # one line: CLI help, `lead doctor`, docs
    local: str  # "module:function" that runs it in this process: fn(run, target) -> dict
    outputs: Callable[[Run, Target], list[Path]]
    needs: tuple[str, ...] = ()  # stages whose outputs it reads (`prepare` is run when missing)
    ray: str | None = None  # "module:function" that runs it on Ray
    on_ray: Callable[[Config], bool] = staticmethod(lambda cfg: False)
    per_system: bool = False
    per_split: bool = False
    inputs: Callable[[Run, Target], list[Path]] | None = None  # stamped stages only
    settings: tuple[str, ...] = ()  # config keys (dotted) that change a stamped stage's result


def _system(run: Run, target: Target):
    return run.system(target.system)


def _cluster(cfg: Config) -> bool:
    return cfg.ray.address is not None


def _search_inputs(run: Run, t: Target) -> list[Path]:
    system = _system(run, t)
    upstream = (
        run.layout.index(system.key)
        if run.is_dual_encoder(system)
        else run.layout.run_file(run.cfg.search.first_stage, t.split)
    )
    return [
        upstream,
        system.folder,
        run.layout.corpus,
        Path(run.data.queries),
        *run.qrels_files(t.split),
    ]


def _run_files(run: Run, t: Target, formats=("trec", "tsv", "json")) -> list[Path]:
    return [run.layout.run_file(_system(run, t).name, t.split, f) for f in formats]


def _evaluation(run: Run, t: Target) -> list[Path]:
    return [run.layout.evaluation(_system(run, t).name, t.split)]


HERE, RAY = "lead_ray.stages.steps:", "lead_ray.distributed.stages:"
SEARCH_SETTINGS = (
    "search",
    "index.nprobe",
    "index.ef_search",
    "data.title",
    "data.dev_fraction",
    "data.split_seed",
    "encode.batch_size",
)

# fmt: off
STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("prepare", "build the corpus store and save the initial teacher and student",
          HERE + "prepare",
          lambda run, t: [run.layout.corpus, *(run.layout.initial_model(r) for r in INITIAL)]),
    Stage("mine", "hard negatives: each training query's top-k, every positive dropped",
          HERE + "mine", needs=("prepare",),
          outputs=lambda run, t: [run.layout.mine, run.layout.embeddings(run.mining_system().key)]),
    Stage("cache-teacher", "a frozen dual-encoder teacher's per-layer features over the training "
          "texts, read by training instead of a teacher forward pass", HERE + "cache_teacher",
          lambda run, t: [run.layout.teacher_cache], needs=("prepare", "mine")),
    Stage("train", "LEAD distillation of the teacher into the student (resumable), with dev "
          "evaluation and the best student kept", HERE + "train",
          lambda run, t: [run.layout.train], needs=("prepare", "mine"),
          ray=RAY + "train", on_ray=lambda cfg: cfg.train.backend == "ray"),
    Stage("encode", "corpus -> embedding shards with a manifest (resumable)", HERE + "encode",
          lambda run, t: [run.layout.embeddings(_system(run, t).key)], needs=("prepare",),
          per_system=True, ray=RAY + "encode",
          on_ray=lambda cfg: cfg.encode.actors > 1 or _cluster(cfg)),
    Stage("index", "FAISS shard indexes over the embeddings (trained once, shared by every "
          "shard)", HERE + "index", lambda run, t: [run.layout.index(_system(run, t).key)],
          needs=("encode",), per_system=True, ray=RAY + "index", on_ray=_cluster),
    Stage("search", "top-k of every query (exact merge over shards; ColBERT and cross-encoder "
          "systems re-rank another system's run): TREC and MS MARCO run files",
          HERE + "search", _run_files, needs=("index",), per_system=True, per_split=True,
          inputs=_search_inputs, settings=SEARCH_SETTINGS,
          ray=RAY + "search", on_ray=lambda cfg: cfg.search.parallel or _cluster(cfg)),
    Stage("evaluate", "metrics of a run against the split's qrels (ir-measures), with the "
          "system's speed and size", HERE + "evaluate", _evaluation, needs=("search",),
          per_system=True, per_split=True, settings=("evaluate", "data.dev_fraction",
                                                     "data.split_seed"),
          inputs=lambda run, t: _run_files(run, t, ("trec", "json")) + run.qrels_files(t.split)),
    Stage("rerank", "the configured teacher re-ranks a run file (--run): run.trec, and metrics "
          "when the split has qrels", HERE + "rerank",
          lambda run, t: [run.layout.reranked, run.layout.reranked_summary], per_split=True),
    Stage("report", "the run card: report.md, metrics.json and plots", HERE + "report",
          lambda run, t: [run.layout.report, run.layout.metrics, run.layout.plots],
          needs=("evaluate",)),
)}
# fmt: on

# Every stage is a CLI verb of the same name, but `evaluate`: `lead search` evaluates what it
# searched, and `lead evaluate RUN QRELS` scores any run file.
VERBS = tuple(name for name in STAGES if name != "evaluate")


def label(run: Run, st: Stage, target: Target) -> str:
    """`encode:student`, `search:student:test`: how a stage call is named in logs and stamps."""
    system = _system(run, target).name if target.system else None
    return ":".join(p for p in (st.name, system, target.split) if p)


def stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return STAGES[name]
