"""Build teacher and student from the config; save and load them as Hugging Face folders.

A saved model folder is a plain Hugging Face folder (config.json, model.safetensors, tokenizer
files) that `transformers.AutoModel` loads, plus `lead_model.json` (kind, max lengths and the
kind's own settings) and whatever the kind's `save` writes (a dual encoder's
sentence-transformers files and `query/` tower, a ColBERT projection, a cross-encoder head).
Which class builds a kind is looked up in `lead_ray/models/registry.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lead_ray.config import ColBERTOptions, ConfigError, StudentConfig, TeacherConfig
from lead_ray.models import formats
from lead_ray.models.backbone import Backbone, load_tokenizer, make_backbone, resolve_model_path
from lead_ray.models.base import Retriever
from lead_ray.models.dual_encoder import DualEncoder, Head
from lead_ray.models.registry import model_class

META = formats.META


def read_meta(folder: str) -> dict | None:
    """The `lead_model.json` of a saved model folder (any model reference), or None for a
    folder lead-ray did not write."""
    return formats.read_meta(resolve_model_path(folder))


def build_teacher(cfg: TeacherConfig) -> Retriever:
    """The model `cfg` names, of its `kind` (a saved model folder keeps its own head)."""
    src = cfg.source
    tok_override = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    if src.init_from is not None:
        raise ConfigError(
            "teacher.model.init_from: only a student can be initialised from the teacher"
        )
    folder = resolve_model_path(src.path) if src.path else None
    if folder is not None:
        formats.check_kind(folder, cfg.kind, "teacher.kind")
    backbone, tok = make_backbone(src, tokenizer=tok_override)
    return model_class(cfg.kind).from_config(cfg, backbone, tok, folder)


def _teacher_backbone(teacher: Retriever) -> Backbone:
    if isinstance(teacher, DualEncoder):
        return teacher.passage_backbone or teacher.query_backbone
    return teacher.backbone


def build_student(cfg: StudentConfig, teacher: Retriever) -> DualEncoder:
    """The dual-encoder student; `init_from: teacher` copies the teacher's lower blocks."""
    src = cfg.source
    tok_override = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    if src.init_from != "teacher":
        backbone, tok = make_backbone(src, tokenizer=tok_override)
        folder = resolve_model_path(src.path) if src.path else None
        return DualEncoder.from_config(cfg, backbone, tok, folder)
    backbone, tok = make_backbone(
        src, teacher=_teacher_backbone(teacher), tokenizer=tok_override or teacher.tokenizer
    )
    # a dual-encoder teacher's head (pooling, Dense, normalisation, prompts, scale) carries over
    # to the copy of its blocks; other kinds have none to inherit
    declared = teacher.declared() if isinstance(teacher, DualEncoder) else Head(pooling="cls")
    if tok_override is not None:  # another vocabulary: the teacher's prompts may not fit it
        declared.prompts = {}
    return DualEncoder.from_config(cfg, backbone, tok, None, declared=declared)


def save_model(model: Retriever, folder: str | Path) -> None:
    """Write `model` into an existing empty folder (callers wrap this in storage.atomic_dir)."""
    folder = Path(folder)
    meta = {
        "kind": model.kind,
        "max_query_length": model.max_query_length,
        "max_doc_length": model.max_doc_length,
        **model.save(folder),
    }
    model.tokenizer.save_pretrained(folder)
    (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def export_model(model: Retriever, target: str | Path) -> None:
    """Save one model as a Hugging Face folder, atomically (built aside, renamed into place)."""
    from lead_ray.storage import atomic_dir

    with atomic_dir(Path(target)) as tmp:
        save_model(model, tmp)


def load_model(folder: str, kind: str | None = None) -> Retriever:
    """Load a saved lead model folder, or a plain HF/sentence-transformers folder (as `kind`,
    default dual encoder, pooling as the folder declares)."""
    meta = read_meta(folder) or {}
    kind = kind or meta.get("kind", "dual_encoder")
    lengths = {k: meta[k] for k in ("max_query_length", "max_doc_length") if k in meta}
    cfg = TeacherConfig(
        kind=kind, model=folder, colbert=ColBERTOptions(**meta.get("colbert", {})), **lengths
    )
    return build_teacher(cfg)


__all__ = [
    "build_student",
    "build_teacher",
    "export_model",
    "load_model",
    "read_meta",
    "save_model",
]
