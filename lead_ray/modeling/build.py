"""Build teacher and student from the config; save and load them as Hugging Face folders.

A saved model folder is a plain Hugging Face folder (config.json, model.safetensors, tokenizer
files) that `transformers.AutoModel` loads, plus:
- `lead_model.json`: kind, pooling, normalisation, max lengths, ColBERT options;
- for a dual encoder, the sentence-transformers files (modules.json, 1_Pooling/, 2_Normalize/),
  so `SentenceTransformer(folder)` loads it too;
- `query/` for a dual encoder with separate towers (the root holds the passage tower);
- `lead_head.safetensors` (cross-encoder head) / `lead_proj.safetensors` (ColBERT projection).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from lead_ray.config import ColBERTOptions, ConfigError, EncoderConfig, StudentConfig, TeacherConfig
from lead_ray.modeling.backbone import (
    Backbone,
    load_backbone,
    load_tokenizer,
    make_backbone,
    resolve_model_path,
    sentence_transformers_pooling,
)
from lead_ray.modeling.colbert import ColBERT
from lead_ray.modeling.cross_encoder import CrossEncoder
from lead_ray.modeling.dual_encoder import DualEncoder

Model = DualEncoder | ColBERT | CrossEncoder
META = "lead_model.json"


def _pooling(cfg: EncoderConfig, declared_from: str | None) -> tuple[str, bool]:
    """Resolve `auto` pooling / normalisation from a sentence-transformers folder, else cls."""
    declared_pool, declared_norm = (None, None)
    if declared_from is not None:
        declared_pool, declared_norm = sentence_transformers_pooling(declared_from)
        meta = _read_meta(declared_from)
        if meta:
            declared_pool, declared_norm = meta.get("pooling"), meta.get("normalize")
    pooling = cfg.pooling if cfg.pooling != "auto" else (declared_pool or "cls")
    normalize = cfg.normalize if cfg.normalize is not None else bool(declared_norm)
    return pooling, normalize


def _read_meta(folder: str) -> dict | None:
    path = Path(resolve_model_path(folder)) / META
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def build_teacher(cfg: TeacherConfig) -> Model:
    """The teacher named by the config (a saved lead model folder keeps its own head/projection)."""
    src = cfg.source
    tok_override = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    if src.init_from is not None:
        raise ConfigError("teacher.model.init_from: only a student can be initialised from the teacher")
    backbone, tok = make_backbone(src, tokenizer=tok_override)
    lengths = {"max_query_length": cfg.max_query_length, "max_doc_length": cfg.max_doc_length}
    if cfg.kind == "dual_encoder":
        pooling, normalize = _pooling(cfg, src.path)
        query_tower = None
        if src.path and (Path(resolve_model_path(src.path)) / "query").is_dir():
            query_tower = load_backbone(str(Path(resolve_model_path(src.path)) / "query"))
        elif not cfg.shared_towers:
            import copy

            query_tower = Backbone(copy.deepcopy(backbone.model))
        if query_tower is not None:  # separate towers: the root folder is the passage tower
            return DualEncoder(query_tower, tok, passage_backbone=backbone, pooling=pooling,
                               normalize=normalize, **lengths)
        return DualEncoder(backbone, tok, pooling=pooling, normalize=normalize, **lengths)
    if cfg.kind == "colbert":
        model = ColBERT(backbone, tok, cfg.colbert, **lengths)
        _load_extra(model.proj, src.path, "lead_proj.safetensors")
        return model
    model = CrossEncoder(backbone, tok, **lengths)
    _load_extra(model.head, src.path, "lead_head.safetensors")
    return model


def _load_extra(module, path: str | None, name: str) -> None:
    if module is None or path is None:
        return
    file = Path(resolve_model_path(path)) / name
    if file.is_file():
        module.load_state_dict(load_file(str(file)))


def _teacher_backbone(teacher: Model) -> Backbone:
    if isinstance(teacher, DualEncoder):
        return teacher.passage_backbone or teacher.query_backbone
    return teacher.backbone


def build_student(cfg: StudentConfig, teacher: Model) -> DualEncoder:
    """The dual-encoder student; `init_from: teacher` copies the teacher's lower blocks."""
    src = cfg.source
    tok_override = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    if src.init_from == "teacher":
        backbone, tok = make_backbone(src, teacher=_teacher_backbone(teacher),
                                      tokenizer=tok_override or teacher.tokenizer)
        # a dual-encoder teacher's pooling carries over; other kinds have none to inherit
        is_de = isinstance(teacher, DualEncoder)
        pooling = cfg.pooling if cfg.pooling != "auto" else (teacher.pooling if is_de else "cls")
        normalize = cfg.normalize if cfg.normalize is not None else (is_de and teacher.normalize)
    else:
        backbone, tok = make_backbone(src, tokenizer=tok_override)
        pooling, normalize = _pooling(cfg, src.path)
    query_tower = None
    if not cfg.shared_towers:
        import copy

        query_tower = Backbone(copy.deepcopy(backbone.model))
    lengths = {"max_query_length": cfg.max_query_length, "max_doc_length": cfg.max_doc_length}
    if query_tower is not None:
        return DualEncoder(query_tower, tok, passage_backbone=backbone, pooling=pooling,
                           normalize=normalize, **lengths)
    return DualEncoder(backbone, tok, pooling=pooling, normalize=normalize, **lengths)


# ----------------------------------------------------------------------------- save / load


def _save_sentence_transformers(folder: Path, model: DualEncoder) -> None:
    dim = model.query_backbone.hidden_size
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if model.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool = {"word_embedding_dimension": dim, "pooling_mode_cls_token": model.pooling == "cls",
            "pooling_mode_mean_tokens": model.pooling == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool, indent=2), encoding="utf-8")
    st_cfg = {"max_seq_length": model.max_doc_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_cfg, indent=2), encoding="utf-8")


def save_model(model: Model, folder: str | Path) -> None:
    """Write `model` into an existing empty folder (callers wrap this in storage.atomic_dir)."""
    folder = Path(folder)
    meta = {"kind": model.kind, "max_query_length": model.max_query_length,
            "max_doc_length": model.max_doc_length}
    if isinstance(model, DualEncoder):
        main = model.passage_backbone or model.query_backbone
        main.model.save_pretrained(folder, safe_serialization=True)
        if model.passage_backbone is not None:
            model.query_backbone.model.save_pretrained(folder / "query", safe_serialization=True)
            model.tokenizer.save_pretrained(folder / "query")
        meta.update(pooling=model.pooling, normalize=model.normalize,
                    shared_towers=model.passage_backbone is None)
        _save_sentence_transformers(folder, model)
    else:
        model.backbone.model.save_pretrained(folder, safe_serialization=True)
        if isinstance(model, ColBERT):
            meta["colbert"] = model.options.model_dump()
            if model.proj is not None:
                save_file({k: v.contiguous() for k, v in model.proj.state_dict().items()},
                          str(folder / "lead_proj.safetensors"))
        else:
            save_file({k: v.contiguous() for k, v in model.head.state_dict().items()},
                      str(folder / "lead_head.safetensors"))
    model.tokenizer.save_pretrained(folder)
    (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def load_model(folder: str, kind: str | None = None) -> Model:
    """Load a saved lead model folder, or a plain HF/sentence-transformers folder (as `kind`,
    default dual encoder, pooling as the folder declares)."""
    meta = _read_meta(folder) or {}
    kind = kind or meta.get("kind", "dual_encoder")
    lengths = {k: meta[k] for k in ("max_query_length", "max_doc_length") if k in meta}
    cfg = TeacherConfig(kind=kind, model=folder, colbert=ColBERTOptions(**meta.get("colbert", {})),
                        **lengths)
    return build_teacher(cfg)
