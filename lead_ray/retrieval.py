"""Evaluate one retrieval system end to end: encode -> index -> search -> run files -> metrics.

Used by the pipeline for the distilled student, its untrained initialisation and a dual-encoder
teacher; `rerank` scores a first-stage run with a ColBERT or cross-encoder teacher instead.
Every step reuses complete outputs (embedding and index manifests, the eval JSON).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from lead_ray.config import Config
from lead_ray.data.runs import read_run, write_msmarco_run, write_trec_run
from lead_ray.data.store import CorpusStore
from lead_ray.modeling import CrossEncoder, load_model
from lead_ray.modeling.tokenize import passage_text
from lead_ray.storage import atomic_write_json, is_complete


def _count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def evaluate_system(cfg: Config, out: Path, name: str, model_folder: str | Path, store: CorpusStore,
                    queries: dict[str, str], qrels: dict[str, dict[str, int]], progress: bool = True,
                    emb_name: str | None = None) -> dict:
    """Metrics, throughput and sizes of one dual-encoder system (cached in eval/<name>.json).

    `emb_name` names the embeddings/index folders (default `name`): systems that share a model
    (the frozen teacher and the mining model) share its corpus embeddings.
    """
    from lead_ray.encoding import encode_corpus, encode_queries
    from lead_ray.evaluation import evaluate
    from lead_ray.indexing import build_index
    from lead_ray.search import ann_recall, exact_search, search_index, to_run

    eval_file = out / "eval" / f"{name}.json"
    if eval_file.is_file():
        return json.loads(eval_file.read_text(encoding="utf-8"))
    emb_dir, index_dir = out / "embeddings" / (emb_name or name), out / "index" / (emb_name or name)
    reused = is_complete(emb_dir)  # another system's embeddings (the mining model's): no rate
    t = time.perf_counter()
    encode_corpus(cfg, str(model_folder), store, emb_dir, progress=progress)
    encode_s = None if reused else time.perf_counter() - t
    t = time.perf_counter()
    build_index(emb_dir, index_dir, cfg.index)
    index_s = time.perf_counter() - t

    model = load_model(str(model_folder))
    model.eval()
    qids = sorted(q for q in qrels if q in queries)
    q_emb = encode_queries(model, [queries[q] for q in qids], batch_size=cfg.encode.batch_size)
    k = min(cfg.search.k, len(store))
    t = time.perf_counter()
    scores, doc_idx = search_index(index_dir, q_emb, k, nprobe=cfg.index.nprobe, ef_search=cfg.index.ef_search)
    search_s = time.perf_counter() - t
    recall = None
    if cfg.search.exact_check and cfg.index.factory.strip() != "Flat":
        _, exact_idx = exact_search(emb_dir, q_emb, k, metric=cfg.index.metric)
        recall = ann_recall(doc_idx, exact_idx, k)
    run = to_run(qids, scores, doc_idx, store.doc_ids)
    _write_runs(out, name, run)
    result = {
        "system": name,
        "model": str(model_folder),
        "metrics": evaluate(run, qrels, cfg.evaluate.metrics, trec_dl=cfg.evaluate.trec_dl)["aggregate"],
        "queries": len(qids),
        "params": _count_params(model),
        "layers": model.num_layers,
        "corpus": len(store),
        "encode_seconds": encode_s,
        "passages_per_second": len(store) / encode_s if encode_s else None,
        "index_seconds": index_s,
        "index_bytes": _folder_bytes(index_dir),
        "search_qps": len(qids) / search_s if search_s > 0 else None,
        "ann_recall": recall,
    }
    atomic_write_json(eval_file, result)
    return result


def _write_runs(out: Path, name: str, run: dict) -> None:
    write_trec_run(out / "runs" / f"{name}.trec", run, tag=name)
    write_msmarco_run(out / "runs" / f"{name}.tsv", run)


@torch.inference_mode()
def rerank(model, run: dict[str, list[tuple[str, float]]], queries: dict[str, str], store: CorpusStore,
           depth: int, title: bool = True) -> dict[str, list[tuple[str, float]]]:
    """Re-score each query's top-`depth` candidates with a ColBERT or cross-encoder model."""
    out = {}
    for qid, ranked in run.items():
        doc_ids = [d for d, _ in ranked[:depth]]
        titles, texts = store.get(np.asarray(store.idx_of(doc_ids)))
        passages = [passage_text(t if title else None, x) for t, x in zip(titles, texts)]
        if isinstance(model, CrossEncoder):
            scores = model.score_pairs([queries[qid]], passages).final[0]
        else:
            scores = model.score(model.encode_queries([queries[qid]]), model.encode_passages(passages)).final[0]
        order = torch.argsort(scores.float(), descending=True).tolist()
        out[qid] = [(doc_ids[i], float(scores[i])) for i in order]
    return out


def evaluate_reranker(cfg: Config, out: Path, name: str, model_folder: str | Path, first_stage: str,
                      store: CorpusStore, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                      depth: int = 100) -> dict:
    """A ColBERT / cross-encoder teacher re-ranking `first_stage`'s run (cached like the rest)."""
    from lead_ray.evaluation import evaluate

    eval_file = out / "eval" / f"{name}.json"
    if eval_file.is_file():
        return json.loads(eval_file.read_text(encoding="utf-8"))
    model = load_model(str(model_folder))
    model.eval()
    first = read_run(out / "runs" / f"{first_stage}.trec")
    t = time.perf_counter()
    run = rerank(model, first, queries, store, depth, cfg.data.title)
    seconds = time.perf_counter() - t
    _write_runs(out, name, run)
    result = {
        "system": name, "model": str(model_folder), "mode": f"re-ranks {first_stage} top-{depth}",
        "metrics": evaluate(run, qrels, cfg.evaluate.metrics, trec_dl=cfg.evaluate.trec_dl)["aggregate"],
        "queries": len(run), "params": _count_params(model), "layers": model.num_layers,
        "rerank_qps": len(run) / seconds if seconds > 0 else None,
    }
    atomic_write_json(eval_file, result)
    return result
