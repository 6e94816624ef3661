"""Each stage in this process: `fn(run, target) -> dict`, binding the run folder to the library.

These are the only functions that turn layout paths into the arguments of the flows'
functions (distill/, corpus/, evaluation/); the Ray versions in lead_ray/distributed/stages.py
bind the same paths to the Ray implementations. Declared in lead_ray/stages/graph.py.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lead_ray.stages.graph import Target
from lead_ray.stages.layout import INITIAL
from lead_ray.stages.run import Run
from lead_ray.storage import atomic_write_json, read_manifest, write_manifest

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- prepare


def _initial_signature(run: Run) -> dict[str, Any]:
    cfg = run.cfg.to_dict()
    return {"teacher": cfg["teacher"], "student": cfg["student"], "seed": run.cfg.train.seed}


def initial_models_current(run: Run) -> bool:
    """Both initial model folders exist, saved for this config's teacher, student and seed."""
    want = _initial_signature(run)
    for role in INITIAL:
        m = read_manifest(run.layout.initial_model(role)) or {}
        if not m.get("complete") or m.get("signature") != want:
            return False
    return True


def prepare(run: Run, target: Target) -> dict:
    """The corpus store, and the teacher and untrained student saved as model folders (what
    mining and the untrained-student baseline load); both reused when current."""
    store = run.store
    if not initial_models_current(run):
        import torch

        from lead_ray.models.build import build_student, build_teacher, export_model

        torch.manual_seed(run.cfg.train.seed)
        teacher = build_teacher(run.cfg.teacher)
        student = build_student(run.cfg.student, teacher)
        for role, model in zip(INITIAL, (teacher, student), strict=True):
            folder = run.layout.initial_model(role)
            export_model(model, folder)
            write_manifest(
                folder,
                {
                    "kind": "model",
                    "complete": True,
                    "role": role,
                    "signature": _initial_signature(run),
                },
            )
    return {"corpus": len(store), "models": [str(run.layout.initial_model(r)) for r in INITIAL]}


# ----------------------------------------------------------------------------- distillation


def mine(run: Run, target: Target) -> dict:
    from lead_ray.distill.mining import mine as mine_negatives

    system = run.mining_system()
    examples = mine_negatives(
        run.cfg,
        run.layout.mine,
        run.store,
        run.queries,
        run.qrels(run.cfg.data.train_split),
        system.folder,
        run.layout.embeddings(system.key),
        progress=run.progress,
        dev_qrels=run.qrels("dev") if run.has_qrels("dev") else None,
    )
    return read_manifest(run.layout.mine) | {"file": str(examples)}


def cache_teacher(run: Run, target: Target) -> dict:
    from lead_ray.distill.teacher_cache import cache_training_texts

    folder = cache_training_texts(run.cfg, run.training_data(), run.store, run.layout.teacher_cache)
    return read_manifest(folder)


def train(run: Run, target: Target) -> dict:
    from lead_ray.distill.train import finished_training, fit_local

    if (done := finished_training(run.layout.train, run.cfg)) is not None:
        return done
    manifest = fit_local(
        run.cfg,
        run.layout.train,
        run.training_data(),
        teacher_cache=run.teacher_cache(),
        progress=run.progress,
        dev=run.dev_set(),
    )
    return trained(run, manifest)


def trained(run: Run, manifest: dict) -> dict:
    """After either trainer: the exported students get their model cards."""
    from lead_ray.models.card import write_model_card

    for name in ("student", "student-best"):
        if run.layout.trained_model(name).is_dir():
            write_model_card(run.layout.trained_model(name), run.cfg)
    if manifest.get("selection"):
        log.info("selected %s: %s", manifest["selected"], manifest["selection"]["why"])
    return manifest


# ----------------------------------------------------------------------------- corpus flow


def encode(run: Run, target: Target) -> dict:
    from lead_ray.corpus.encode import encode_corpus

    system = run.system(target.system)
    return encode_corpus(
        run.cfg,
        str(system.folder),
        run.store,
        run.layout.embeddings(system.key),
        progress=run.progress,
    )


def index_plan(run: Run, target: Target):
    """The size plan of indexing a system's embeddings, checked before anything is built: a
    factory faiss rejects, a corpus too small to train it, or a plan above
    `encode.memory_limit_gb` is one clear error. None for a factory the planner cannot size."""
    from lead_ray.corpus.embeddings import read_embeddings_manifest
    from lead_ray.corpus.index import make_index
    from lead_ray.corpus.planner import UnsizedFactory, check_plan, make_plan

    emb = read_embeddings_manifest(run.layout.embeddings(run.system(target.system).key))
    cfg = run.cfg
    make_index(cfg.index.factory, emb["dim"], cfg.index.metric)  # ConfigError if faiss rejects it
    try:
        plan = make_plan(
            emb["rows"],
            emb["dim"],
            dtype=emb["dtype"],
            factory=cfg.index.factory,
            shard_rows=emb.get("shard_rows") or cfg.encode.shard_rows,
            train_sample=cfg.index.train_sample,
            merge=cfg.index.merge,
        )
    except UnsizedFactory as err:
        log.warning("no size plan: %s", err)
        return None
    if cfg.encode.memory_limit_gb:
        check_plan(plan, int(cfg.encode.memory_limit_gb * 2**30))
    return plan


def index(run: Run, target: Target) -> dict:
    from lead_ray.corpus.index import build_index

    plan = index_plan(run, target)
    key = run.system(target.system).key
    return build_index(run.layout.embeddings(key), run.layout.index(key), run.cfg.index) | {
        "plan": plan
    }


def search(run: Run, target: Target, searcher=None) -> dict:
    """The system's top-k for every query of the split (every query when the split has no
    qrels): index search for a dual encoder, re-ranking `search.first_stage`'s run otherwise.
    Writes the TREC and MS MARCO runs and the summary (`runs/<system>/<split>.json`)."""
    from lead_ray.data.runs import write_msmarco_run, write_trec_run
    from lead_ray.models.build import load_model

    system, split, layout = run.system(target.system), target.split, run.layout
    qrels = run.qrels(split) if run.has_qrels(split) else {}
    qids = sorted(q for q in (qrels or run.queries) if q in run.queries)
    model = load_model(str(system.folder))
    model.eval()
    facts = {
        "system": system.name,
        "split": split,
        "model": str(system.folder),
        "queries": len(qids),
        "params": sum(p.numel() for p in model.parameters()),
        "layers": model.num_layers,
        "corpus": len(run.store),
    }
    if run.is_dual_encoder(system):
        result, facts_ = _index_search(run, system, model, qids, searcher)
    else:
        result, facts_ = _rerank(run, model, qids, split)
    write_trec_run(layout.run_file(system.name, split), result, tag=system.name)
    write_msmarco_run(layout.run_file(system.name, split, "tsv"), result)
    summary = facts | facts_
    atomic_write_json(layout.run_file(system.name, split, "json"), summary)
    return summary


def _index_search(run: Run, system, model, qids: list[str], searcher) -> tuple[dict, dict]:
    from lead_ray.corpus.embeddings import read_embeddings_manifest
    from lead_ray.corpus.encode import encode_queries
    from lead_ray.corpus.ids import IdMap
    from lead_ray.corpus.search import ann_recall, exact_search, read_index_manifest, search_index

    cfg, emb_dir, index_dir = (
        run.cfg,
        run.layout.embeddings(system.key),
        run.layout.index(system.key),
    )
    ids = IdMap.for_embeddings(run.store.doc_ids, read_embeddings_manifest(emb_dir))
    manifest = read_index_manifest(index_dir)
    q_emb = encode_queries(model, [run.queries[q] for q in qids], batch_size=cfg.encode.batch_size)
    k, metric = min(cfg.search.k, len(run.store)), manifest["metric"]
    t = time.perf_counter()
    scores, vectors = (searcher or search_index)(
        index_dir,
        q_emb,
        ids.search_depth(k),
        nprobe=cfg.index.nprobe,
        ef_search=cfg.index.ef_search,
    )
    seconds = time.perf_counter() - t
    scores, rows = ids.documents(scores, vectors, k, metric)  # [Q, k] distinct documents
    facts = {
        "k": k,
        "factory": manifest["factory"],
        "search_qps": len(qids) / seconds if seconds > 0 else None,
        "ann_recall": None,
    }
    if cfg.search.exact_check and manifest["factory"].strip() != "Flat":
        exact_s, exact_v = exact_search(emb_dir, q_emb, ids.search_depth(k), metric=metric)
        exact = ids.documents(exact_s, exact_v, k, metric)[1]
        facts["ann_recall"] = ann_recall(rows, exact, k)  # recall@k
        if k > 10:
            facts["ann_recall_10"] = ann_recall(rows, exact, 10)
    return ids.to_run(qids, scores, rows), facts


def first_stage_run(run: Run, split: str) -> Path:
    """The run a re-ranker reads: `search.first_stage` as a run file, else as a system of this
    run folder (its run on `split`)."""
    first = run.cfg.search.first_stage
    if Path(first).is_file():
        return Path(first)
    path = run.layout.run_file(run.system(first).name, split)
    if not path.is_file():
        from lead_ray.config import ConfigError

        raise ConfigError(
            f"search.first_stage={first!r}: no run file {first} and no run {path} "
            "to re-rank (search that system first, or name a run file)"
        )
    return path


def _rerank(run: Run, model, qids: list[str] | None, split: str) -> tuple[dict, dict]:
    """`model` re-ranks the first stage's top `search.rerank_depth` of each query (of `qids`,
    or every query of the run); -> (run, facts)."""
    from lead_ray.data.runs import read_run
    from lead_ray.evaluation.rerank import rerank

    cfg = run.cfg.search
    first = read_run(first_stage_run(run, split))
    if qids is not None:
        wanted = set(qids)
        first = {q: r for q, r in first.items() if q in wanted}
    t = time.perf_counter()
    result = rerank(model, first, run.queries, run.store, cfg.rerank_depth, run.cfg.data.title)
    seconds = time.perf_counter() - t
    return result, {
        "mode": f"re-ranks {cfg.first_stage} top-{cfg.rerank_depth}",
        "rerank_qps": len(result) / seconds if seconds > 0 else None,
    }


def rerank(run: Run, target: Target) -> dict:
    """`lead rerank`: the configured teacher re-ranks a run (`search.first_stage`): run.trec,
    run.tsv and rerank.json (with metrics when the split has qrels) in the run folder."""
    from lead_ray.data.runs import write_msmarco_run, write_trec_run
    from lead_ray.evaluation.metrics import evaluate as score_run
    from lead_ray.models.build import build_teacher

    layout, split = run.layout, target.split
    model = build_teacher(run.cfg.teacher).eval()
    result, facts = _rerank(run, model, None, split)
    write_trec_run(layout.reranked, result, tag="rerank")
    write_msmarco_run(layout.reranked_tsv, result)
    summary = {
        "teacher": run.cfg.teacher.kind,
        "split": split,
        "queries": len(result),
        "first_stage": str(first_stage_run(run, split)),
        **facts,
    }
    if run.has_qrels(split):
        metrics = score_run(
            layout.reranked,
            run.qrels(split),
            run.cfg.evaluate.metrics,
            trec_dl=run.cfg.evaluate.trec_dl,
        )
        summary["metrics"] = metrics["aggregate"]
    atomic_write_json(layout.reranked_summary, summary)
    return summary


# ----------------------------------------------------------------------------- evaluation


def evaluate(run: Run, target: Target) -> dict:
    """Metrics of the system's run on the split, with its speed and sizes
    (eval/<system>/<split>.json)."""
    import json

    from lead_ray.evaluation.metrics import evaluate as score_run

    system, split, layout = run.system(target.system), target.split, run.layout
    summary = json.loads(layout.run_file(system.name, split, "json").read_text(encoding="utf-8"))
    cfg = run.cfg.evaluate
    metrics = score_run(
        layout.run_file(system.name, split), run.qrels(split), cfg.metrics, trec_dl=cfg.trec_dl
    )["aggregate"]
    result = {**summary, "metrics": metrics, **_corpus_facts(run, system)}
    atomic_write_json(layout.evaluation(system.name, split), result)
    return result


def _corpus_facts(run: Run, system) -> dict:
    """Encoding rate and index size of a dual-encoder system (from the stage manifests)."""
    emb = read_manifest(run.layout.embeddings(system.key)) or {}
    idx = read_manifest(run.layout.index(system.key)) or {}
    if not emb:
        return {}
    encoded = emb.get("last_run") or {}
    folder = run.layout.index(system.key)
    return {
        "encode_seconds": encoded.get("seconds"),
        "passages_per_second": encoded.get("docs_per_s"),
        "index_seconds": (idx.get("last_run") or {}).get("seconds"),
        "index_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
    }


def report(run: Run, target: Target) -> dict:
    """The run card over every evaluated system on the evaluation split."""
    import json

    from lead_ray.evaluation.report import write_run_card

    results = {}
    for name in run.evaluated_systems():
        path = run.layout.evaluation(run.system(name).name, run.eval_split)
        if path.is_file():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
    student = run.system("student").folder  # the selected student (student-best or the last)
    if "student" in results and student.is_dir():  # the card gets the student's numbers
        from lead_ray.models.card import write_model_card

        write_model_card(student, run.cfg, results["student"]["metrics"], run.eval_split)
    return write_run_card(run, results, stage_seconds(run))


def stage_seconds(run: Run) -> dict[str, float]:
    """Wall seconds per stage for the run card: this invocation's (`run.times`; a stage that
    found its work done shows the time it took to notice), with training's own time from its
    manifest when this invocation did not train."""
    times = dict(run.times)
    trained_for = (read_manifest(run.layout.train) or {}).get("seconds")
    if trained_for is not None and times.get("train", 0.0) < trained_for:
        times["train (recorded)"] = trained_for
        times.pop("train", None)
    return times
