"""`lead cache-teacher`: a frozen dual-encoder teacher's features over every text training draws.

A frozen teacher computes the same per-layer vectors for the same text at every step, so they
are computed once here (lead_ray/models/cached.py writes and reads the cache) and training
answers the teacher from the cache (`teacher.cache: true`). The texts are the training queries
and every passage a batch can draw: the first positives and mined negatives of the examples,
or the whole corpus when negatives are drawn at random from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lead_ray.config import Config, ConfigError

log = logging.getLogger(__name__)


def cache_training_texts(cfg: Config, data, store, folder: Path) -> Path:
    """Build (or reuse) the feature cache of `cfg.teacher` over the texts of `data`
    (a `TrainingData`); returns the folder."""
    from lead_ray.models.cached import build_feature_cache

    if cfg.teacher.kind != "dual_encoder" or cfg.teacher.trainable:
        raise ConfigError(
            "cache-teacher: only a frozen dual-encoder teacher can be cached "
            "(teacher.kind: dual_encoder, teacher.trainable: false)"
        )
    queries = [data.query_text(ex) for ex in data.examples]
    pool = data.passage_pool()
    if pool is None:
        log.warning(
            "some examples have no mined negatives, so training draws negatives from the "
            "whole corpus: caching all %d passages",
            len(store),
        )
        rows = np.arange(len(store))
    else:
        rows = store.idx_of(pool)
    passages = store.texts(rows, cfg.data.title)
    return build_feature_cache(
        cfg.teacher, queries, passages, folder, batch_size=cfg.encode.batch_size
    )
