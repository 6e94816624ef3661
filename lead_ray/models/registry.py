"""The model kinds a config can name (`teacher.kind`), one line each: kind -> "module:Class".

A kind is a `lead_ray.models.base.Retriever` subclass with `from_config`, `scores` and `save`
(see docs/architecture.md for a worked example). Classes are imported only when a model is
built, so the config can check a kind without importing torch.
"""

from __future__ import annotations

import importlib

KINDS: dict[str, str] = {
    "dual_encoder": "lead_ray.models.dual_encoder:DualEncoder",
    "colbert": "lead_ray.models.colbert:ColBERT",
    "cross_encoder": "lead_ray.models.cross_encoder:CrossEncoder",
}


def model_class(kind: str) -> type:
    """The `Retriever` subclass registered for `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
