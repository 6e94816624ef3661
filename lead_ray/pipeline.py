"""`lead pipeline`: mine -> train (LEAD) -> encode -> index -> search -> evaluate -> report.

Every stage writes into its own folder under DIR and finishes it with a manifest; a rerun on the
same DIR skips what is complete and redoes what is not (a stage killed mid-way leaves no
manifest, so it is redone). Three systems are evaluated on the same queries: the distilled
student, the same student before training (its initialisation), and the teacher (full retrieval
for a dual encoder; re-ranking of the student's candidates for ColBERT / cross-encoder teachers).

DIR/
  config.yaml  corpus/  models/{teacher-init,student-init}/  mine/  train/
  embeddings/<system>/  index/<system>/  runs/<system>.{trec,tsv}  eval/<system>.json
  report.md  metrics.json  plots/*.png
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lead_ray.config import Config, save_resolved
from lead_ray.data.prepare import DataPaths, open_corpus, resolve_data, split_qrels
from lead_ray.data.queries import read_queries
from lead_ray.storage import is_complete, read_manifest, write_manifest

log = logging.getLogger(__name__)


def materialize_initial_models(cfg: Config, folder: Path) -> dict[str, Path]:
    """Save the teacher and the untrained student as folders (what mining and the
    untrained-student baseline load); reused when complete."""
    from lead_ray.checkpoint import export_model
    from lead_ray.modeling import build_student, build_teacher

    out = {"teacher-init": folder / "teacher-init", "student-init": folder / "student-init"}
    if all(is_complete(p) for p in out.values()):
        return out
    import torch

    torch.manual_seed(cfg.train.seed)
    teacher = build_teacher(cfg.teacher)
    student = build_student(cfg.student, teacher)
    for name, model in (("teacher-init", teacher), ("student-init", student)):
        export_model(model, out[name])
        write_manifest(out[name], {"kind": "model", "complete": True, "role": name})
    return out


def _train(cfg: Config, out: Path, examples: Path | None, progress: bool) -> Path:
    train_dir = out / "train"
    if cfg.train.backend == "ray":
        from lead_ray.distributed.train import run_training

        run_training(cfg, train_dir, progress=progress, cache_dir=out / "corpus", examples_path=examples)
    else:
        from lead_ray.training import fit_local

        fit_local(cfg, train_dir, progress=progress, cache_dir=out / "corpus", examples_path=examples)
    return train_dir


def _mining_model(cfg: Config, models: dict[str, Path]) -> Path:
    choice = cfg.mine.model
    if choice == "teacher":
        return models["teacher-init"] if cfg.teacher.kind == "dual_encoder" else models["student-init"]
    if choice == "student":
        return models["student-init"]
    return Path(choice)


def run_pipeline(cfg: Config, out_dir: str | Path, progress: bool = True) -> dict:
    """Run every stage that is not complete yet; returns the headline metrics."""
    from lead_ray.mining import mine
    from lead_ray.retrieval import evaluate_system

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out)
    times: dict[str, float] = {}
    t = time.perf_counter()
    paths = resolve_data(cfg.data, out)
    store = open_corpus(paths, out / "corpus")
    models = materialize_initial_models(cfg, out / "models")
    times["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    has_train_qrels = cfg.data.train_split in paths.qrels or cfg.data.examples is not None
    examples = None
    if cfg.data.examples is None and has_train_qrels:
        miner = _mining_model(cfg, models)
        examples = mine(cfg, out / "mine", store, paths, str(miner), teacher_folder=str(models["teacher-init"]),
                        progress=progress, emb_dir=out / "embeddings" / miner.name)
    times["mine"] = time.perf_counter() - t

    t = time.perf_counter()
    train_dir = _train(cfg, out, examples, progress)
    times["train"] = time.perf_counter() - t

    # system name -> (model folder, embeddings folder name); a model evaluated twice is encoded once
    systems = {"student": (train_dir / "student", "student"),
               "student-init": (models["student-init"], "student-init")}
    if cfg.teacher.kind == "dual_encoder":
        systems["teacher"] = (models["teacher-init"], "teacher-init")
        if (train_dir / "teacher").is_dir():  # trained jointly: show it before and after
            systems["teacher-init"] = systems["teacher"]
            systems["teacher"] = (train_dir / "teacher", "teacher")
    eval_split = cfg.search.split or cfg.data.eval_split
    qrels = split_qrels(cfg.data, paths, eval_split, cfg.train.seed)
    queries = read_queries(paths.queries)
    results = {}
    for name, (folder, emb_name) in systems.items():
        t = time.perf_counter()
        results[name] = evaluate_system(cfg, out, name, folder, store, queries, qrels, progress=progress,
                                        emb_name=emb_name)
        times[f"eval:{name}"] = time.perf_counter() - t
    if cfg.teacher.kind != "dual_encoder":
        from lead_ray.retrieval import evaluate_reranker

        teacher_folder = train_dir / "teacher" if (train_dir / "teacher").is_dir() else models["teacher-init"]
        results["teacher"] = evaluate_reranker(cfg, out, "teacher", teacher_folder, "student", store,
                                               queries, qrels)
    from lead_ray.report import write_run_card

    return write_run_card(cfg, out, results, times, paths)


def data_paths_for(cfg: Config, out: Path) -> DataPaths:
    return resolve_data(cfg.data, out)


def stage_status(out: Path) -> dict[str, bool]:
    """Which stages of a pipeline folder are complete (for `lead pipeline --status`)."""
    names = ["models/teacher-init", "models/student-init", "mine", "train"]
    status = {n: is_complete(out / n) for n in names}
    for kind in ("embeddings", "index"):
        for p in sorted((out / kind).glob("*")) if (out / kind).is_dir() else []:
            status[f"{kind}/{p.name}"] = is_complete(p)
    return status


__all__ = ["run_pipeline", "stage_status", "materialize_initial_models", "read_manifest"]
