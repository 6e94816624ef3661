"""`lead index` and `lead search`: FAISS shard indexes over DIR/embeddings, then top-k runs."""

from __future__ import annotations

from pathlib import Path

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, SetOpt, load, run_guarded


def _index(cfg, out: Path, use_ray: bool) -> dict:
    from lead_ray.config import save_resolved
    from lead_ray.embeddings import read_embeddings_manifest
    from lead_ray.planner import check_plan, format_plan, make_plan

    emb = read_embeddings_manifest(out / "embeddings")
    plan = make_plan(emb["rows"], emb["dim"], dtype=emb["dtype"], factory=cfg.index.factory,
                     shard_rows=emb.get("shard_rows") or cfg.encode.shard_rows,
                     train_sample=cfg.index.train_sample, merge=cfg.index.merge)
    typer.echo(format_plan(plan), err=True)
    if cfg.encode.memory_limit_gb:
        check_plan(plan, int(cfg.encode.memory_limit_gb * 2**30))
    save_resolved(cfg, out)
    if use_ray:
        from lead_ray.distributed.index import run_indexing
        from lead_ray.distributed.session import start_ray

        start_ray(cfg)
        return run_indexing(cfg, out / "embeddings", out / "index")
    from lead_ray.indexing import build_index

    return build_index(out / "embeddings", out / "index", cfg.index)


def _search(cfg, out: Path, model: Path | None, split: str | None, use_ray: bool) -> dict:
    from lead_ray.cli.corpus_cmd import encode_model
    from lead_ray.data.prepare import open_corpus, resolve_data, split_qrels
    from lead_ray.data.queries import read_queries
    from lead_ray.data.runs import write_msmarco_run, write_trec_run
    from lead_ray.encoding import encode_queries, load_dual_encoder
    from lead_ray.evaluation import evaluate
    from lead_ray.search import ann_recall, exact_search, read_index_manifest, search_index, to_run
    from lead_ray.storage import atomic_write_json

    paths = resolve_data(cfg.data, out)
    store = open_corpus(paths, out / "corpus")
    split = split or cfg.search.split or cfg.data.eval_split
    queries = read_queries(paths.queries)
    qrels = split_qrels(cfg.data, paths, split, cfg.train.seed) if split in paths.qrels or (
        split == "dev" and cfg.data.dev_fraction) else {}
    qids = sorted(q for q in (qrels or queries) if q in queries)
    encoder = load_dual_encoder(encode_model(cfg, out, model))
    q_emb = encode_queries(encoder, [queries[q] for q in qids], batch_size=cfg.encode.batch_size)
    k = min(cfg.search.k, len(store))
    manifest = read_index_manifest(out / "index")
    kwargs = {"nprobe": cfg.index.nprobe, "ef_search": cfg.index.ef_search}
    if use_ray:
        from lead_ray.distributed.index import run_search_parallel
        from lead_ray.distributed.session import start_ray

        start_ray(cfg)
        scores, doc_idx = run_search_parallel(out / "index", q_emb, k, **kwargs)
    else:
        scores, doc_idx = search_index(out / "index", q_emb, k, **kwargs)
    summary: dict = {"split": split, "queries": len(qids), "k": k, "factory": manifest["factory"]}
    if cfg.search.exact_check and manifest["factory"].strip() != "Flat":
        _, exact = exact_search(out / "embeddings", q_emb, k, metric=manifest["metric"])
        summary[f"ann_recall@{k}"] = ann_recall(doc_idx, exact, k)
    run = to_run(qids, scores, doc_idx, store.doc_ids)
    write_trec_run(out / "runs" / f"{split}.trec", run, tag=cfg.name)
    write_msmarco_run(out / "runs" / f"{split}.tsv", run)
    if qrels:
        summary["metrics"] = evaluate(run, qrels, cfg.evaluate.metrics, trec_dl=cfg.evaluate.trec_dl)["aggregate"]
    atomic_write_json(out / "runs" / f"{split}.json", summary)
    return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def index(config: ConfigArg, out: OutOpt, overrides: SetOpt = None,
              ray: bool = typer.Option(False, "--ray", help="One Ray task per shard (default when "
                                       "ray.address is set).")) -> None:
        """Build FAISS indexes over DIR/embeddings (index.factory; IVF/PQ trained once on a sample
        and shared by every shard) into DIR/index; complete shards are kept on rerun."""
        cfg = load(config, overrides)
        manifest = run_guarded(_index, cfg, out, ray or cfg.ray.address is not None)
        typer.echo(f"index: {out / 'index'}  ({manifest['factory']}, {len(manifest['shards'])} shards)")

    @app.command()
    def search(config: ConfigArg, out: OutOpt, overrides: SetOpt = None,
               model: Path = typer.Option(None, help="Query encoder folder (default: encode.model)."),
               split: str = typer.Option(None, help="Query split (default: search.split or data.eval_split)."),
               ray: bool = typer.Option(False, "--ray", help="Search shards in parallel Ray tasks.")) -> None:
        """Search every shard of DIR/index, merge the top-k exactly, write DIR/runs/<split>.trec
        (TREC) and .tsv (MS MARCO); evaluate when the split has qrels."""
        cfg = load(config, overrides)
        summary = run_guarded(_search, cfg, out, model, split, ray or cfg.search.parallel or
                              cfg.ray.address is not None)
        typer.echo(f"run: {out / 'runs' / (summary['split'] + '.trec')}  ({summary['queries']} queries)")
        for name, value in (summary.get("metrics") or {}).items():
            typer.echo(f"  {name:<10} {value:.4f}")
        for key, value in summary.items():
            if key.startswith("ann_recall"):
                typer.echo(f"  {key} vs exact: {value:.4f}")
