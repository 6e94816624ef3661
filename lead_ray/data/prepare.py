"""From the `data` config section to files and training examples every stage agrees on.

`resolve_data` names the corpus, queries and qrels files (a BEIR folder, explicit paths, the
packaged sample, or a seeded synthetic collection written into the work folder). `open_corpus`
builds or reopens the memory-mapped corpus store. `split_qrels` serves train / dev / test qrels,
carving a dev split out of train when asked (model selection never looks at test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lead_ray.config import Config, DataConfig
from lead_ray.data.beir import BeirFolder
from lead_ray.data.errors import DataError
from lead_ray.data.examples import Example, examples_from_qrels, read_examples, split_dev
from lead_ray.data.qrels import read_qrels
from lead_ray.data.queries import read_queries
from lead_ray.data.store import CorpusStore
from lead_ray.data.synthetic import write_beir


@dataclass
class DataPaths:
    corpus: str
    queries: str
    qrels: dict[str, str] = field(default_factory=dict)  # split -> file


def resolve_data(cfg: DataConfig, work_dir: str | Path) -> DataPaths:
    """The files a config's data section names (writing the synthetic collection if asked)."""
    corpus = queries = None
    qrels: dict[str, str] = {}
    beir = cfg.beir
    if cfg.synthetic is not None and beir is None:
        beir = str(write_beir(cfg.synthetic, Path(work_dir) / "synthetic"))
    if beir is not None:
        folder = BeirFolder(beir)
        corpus, queries = str(folder.corpus), str(folder.queries)
        qrels = {split: str(p) for split, p in folder.qrels_files().items()}
    corpus = cfg.corpus or corpus
    queries = cfg.queries or queries
    for split in ("train", "dev", "test"):
        if getattr(cfg.qrels, split):
            qrels[split] = getattr(cfg.qrels, split)
    if corpus is None or queries is None:
        raise DataError("config", "data needs a corpus and queries (data.beir, or data.corpus + data.queries)")
    return DataPaths(corpus, queries, qrels)


def open_corpus(paths: DataPaths, cache_dir: str | Path) -> CorpusStore:
    """The memory-mapped corpus store in `cache_dir` (built once, reused when unchanged)."""
    return CorpusStore.build(paths.corpus, cache_dir)


def split_qrels(cfg: DataConfig, paths: DataPaths, split: str, seed: int = 0) -> dict[str, dict[str, int]]:
    """Qrels of a split; `dev` is carved out of train (by query) when no dev file exists."""
    carve = cfg.dev_fraction > 0 and "dev" not in paths.qrels
    if split in paths.qrels and not (carve and split == cfg.train_split):
        return read_qrels(paths.qrels[split])
    if carve and split in ("dev", cfg.train_split) and cfg.train_split in paths.qrels:
        train = read_qrels(paths.qrels[cfg.train_split])
        dev_ids = set(split_dev(sorted(train), cfg.dev_fraction, seed))
        keep = (lambda q: q in dev_ids) if split == "dev" else (lambda q: q not in dev_ids)
        return {q: docs for q, docs in train.items() if keep(q)}
    raise DataError("config", f"no qrels for split {split!r} (have: {sorted(paths.qrels) or 'none'})")


def training_examples(cfg: Config, paths: DataPaths, store: CorpusStore,
                      examples_path: str | Path | None = None) -> list[Example]:
    """Examples from a file (mined or given) or from the train qrels (negatives drawn at random
    from the corpus later); positives missing from the corpus are dropped."""
    source = examples_path or cfg.data.examples
    if source is not None:
        examples = list(read_examples(source))
    else:
        qrels = split_qrels(cfg.data, paths, cfg.data.train_split, cfg.train.seed)
        examples = examples_from_qrels(qrels)
    kept = []
    for ex in examples:
        known = [d for d, i in zip(ex.positive_ids, store.idx_of(ex.positive_ids)) if i >= 0]
        if known:
            kept.append(Example(ex.query_id, ex.query, known, ex.negative_ids, ex.teacher_scores)
                        if known != ex.positive_ids else ex)
    return kept


def prepare_training_data(cfg: Config, work_dir: str | Path, cache_dir: str | Path | None = None,
                          examples_path: str | Path | None = None):
    """Everything the trainer reads: a `TrainingData` with deterministic batches."""
    from lead_ray.data.batching import TrainingData

    work_dir = Path(work_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else work_dir / "corpus"
    # generated data lives beside the corpus cache, so a pipeline and its train stage share it
    paths = resolve_data(cfg.data, cache_dir.parent)
    store = open_corpus(paths, cache_dir)
    examples = training_examples(cfg, paths, store, examples_path)
    queries = read_queries(paths.queries)
    return TrainingData(examples, queries, store, seed=cfg.train.seed, negatives=cfg.train.negatives,
                        title=cfg.data.title)
