"""From the `data` config section to files and training examples every stage agrees on.

`resolve_data` names the corpus, queries and qrels files (a BEIR folder, explicit paths, the
packaged sample, or a seeded synthetic collection written into a folder). `split_qrels` serves
train / dev / test qrels, carving a dev split out of train when asked (`data.dev_fraction`,
drawn with `data.split_seed`, so the split never depends on a training seed; model selection
never looks at test). `training_data` turns examples into deterministic batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lead_ray.config import Config, DataConfig
from lead_ray.data.beir import BeirFolder
from lead_ray.data.errors import DataError
from lead_ray.data.examples import Example, examples_from_qrels, read_examples, split_dev
from lead_ray.data.qrels import read_qrels
from lead_ray.data.store import CorpusStore
from lead_ray.data.synthetic import write_beir


@dataclass
class DataPaths:
    corpus: str
    queries: str
    qrels: dict[str, str] = field(default_factory=dict)  # split -> file


def resolve_data(cfg: DataConfig, synthetic_dir: str | Path) -> DataPaths:
    """The files a config's data section names (writing a synthetic collection into
    `synthetic_dir` if asked)."""
    corpus = queries = None
    qrels: dict[str, str] = {}
    beir = cfg.beir
    if cfg.synthetic is not None and beir is None:
        beir = str(write_beir(cfg.synthetic, Path(synthetic_dir)))
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
        raise DataError(
            "config", "data needs a corpus and queries (data.beir, or data.corpus + data.queries)"
        )
    return DataPaths(corpus, queries, qrels)


def split_qrels(cfg: DataConfig, paths: DataPaths, split: str) -> dict[str, dict[str, int]]:
    """Qrels of a split; `dev` is carved out of train (by query, `data.split_seed`) when no dev
    file exists."""
    carve = cfg.dev_fraction > 0 and "dev" not in paths.qrels
    if split in paths.qrels and not (carve and split == cfg.train_split):
        return read_qrels(paths.qrels[split])
    if carve and split in ("dev", cfg.train_split) and cfg.train_split in paths.qrels:
        train = read_qrels(paths.qrels[cfg.train_split])
        dev_ids = set(split_dev(sorted(train), cfg.dev_fraction, cfg.split_seed))
        keep = (lambda q: q in dev_ids) if split == "dev" else (lambda q: q not in dev_ids)
        return {q: docs for q, docs in train.items() if keep(q)}
    raise DataError(
        "config", f"no qrels for split {split!r} (have: {sorted(paths.qrels) or 'none'})"
    )


def training_data(
    cfg: Config,
    paths: DataPaths,
    store: CorpusStore,
    queries: dict[str, str],
    examples_file: str | Path | None = None,
):
    """A `TrainingData` with deterministic batches. Examples come from a file (mined or given)
    or from the train qrels (negatives then drawn at random from the corpus); positives missing
    from the corpus are dropped."""
    from lead_ray.data.batching import TrainingData

    if examples_file is not None:
        examples = list(read_examples(examples_file))
    else:
        examples = examples_from_qrels(split_qrels(cfg.data, paths, cfg.data.train_split))
    kept = []
    for ex in examples:
        rows = store.idx_of(ex.positive_ids)
        known = [d for d, i in zip(ex.positive_ids, rows, strict=True) if i >= 0]
        if known:
            kept.append(
                ex
                if known == ex.positive_ids
                else Example(ex.query_id, ex.query, known, ex.negative_ids, ex.teacher_scores)
            )
    return TrainingData(
        kept,
        queries,
        store,
        seed=cfg.train.seed,
        negatives=cfg.train.negatives,
        title=cfg.data.title,
    )
