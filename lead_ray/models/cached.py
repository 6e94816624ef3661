"""A frozen dual-encoder teacher answered from a feature cache instead of a forward pass.

A frozen teacher computes the same vectors for the same text at every step, so its pooled
vectors (final, and the raw pooled state of every block) can be computed once for every query
and passage text that training can draw, and looked up afterwards. `build_feature_cache` writes
them into a folder (`features.safetensors`: `{q,p}_final` [N, D], `{q,p}_layers` [L, N, H];
`texts.json`; `manifest.json` last, naming the teacher and its settings). `CachedDualEncoder` is a
`DualEncoder` (so the scoring interface, pooling inheritance and `init_from: teacher` work
unchanged) whose `encode` reads the cache; its backbone is kept only to initialise a student from
it. `lead cache-teacher` (lead_ray/distill/teacher_cache.py) builds the cache over the texts
training can draw.

Texts are the keys: exactly the strings the trainer passes (queries as given, passages as
`passage_text(title, text)`). A text that is not in the cache is an error, never a silent
forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lead_ray.config import ConfigError, TeacherConfig
from lead_ray.models.base import Encoded
from lead_ray.models.dual_encoder import DualEncoder
from lead_ray.storage import atomic_dir, read_manifest

FEATURES, TEXTS = "features.safetensors", "texts.json"
KIND = "teacher_cache"


def teacher_signature(cfg: TeacherConfig) -> dict:
    """What makes two caches of the same texts interchangeable: the teacher and its settings."""
    from lead_ray.models.backbone import resolve_model_path
    from lead_ray.storage import fingerprint_folder

    src = cfg.source
    # a folder by its content; a model built in code by its (seeded) spec
    model = (
        fingerprint_folder(resolve_model_path(src.path))
        if src.path is not None
        else src.build.model_dump()
    )
    return {
        "model": model,
        "layers": src.layers,
        "tokenizer": cfg.tokenizer,
        "pooling": cfg.pooling,
        "prompts": [cfg.query_prompt, cfg.passage_prompt],
        "normalize": cfg.normalize,
        "max_query_length": cfg.max_query_length,
        "max_doc_length": cfg.max_doc_length,
    }


@torch.inference_mode()
def _encode_all(
    teacher: DualEncoder, texts: Sequence[str], side: str, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """final [N, D] and every block's pooled state [L, N, H], in input order."""
    layers = list(range(teacher.num_layers))
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths together
    final = layers_out = None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        enc = teacher.encode([texts[i] for i in rows], side, layers)
        if final is None:
            final = enc.final.new_zeros((len(texts), enc.final.shape[-1]))
            layers_out = enc.layers.new_zeros((len(layers), len(texts), enc.layers.shape[-1]))
        idx = torch.tensor(rows)
        final[idx] = enc.final.float()
        layers_out[:, idx] = enc.layers.float()
    return final, layers_out


def build_feature_cache(
    cfg: TeacherConfig,
    queries: Sequence[str],
    passages: Sequence[str],
    folder: str | Path,
    batch_size: int = 64,
) -> Path:
    """Encode every query and passage text with the teacher `cfg` names, at every block.

    Skipped when `folder` already holds a complete cache of the same teacher and texts.
    The folder is written as a whole (atomically): a killed build leaves no cache behind.
    """
    from lead_ray.models.build import build_teacher

    folder = Path(folder)
    queries, passages = list(dict.fromkeys(queries)), list(dict.fromkeys(passages))
    signature = teacher_signature(cfg)
    old = read_manifest(folder)
    if (
        old
        and old.get("complete")
        and old.get("teacher") == signature
        and _same_texts(folder, queries, passages)
    ):
        return folder
    teacher = build_teacher(cfg)
    if not isinstance(teacher, DualEncoder):
        raise ConfigError(
            f"teacher.cache: only a dual_encoder teacher can be cached (got {teacher.kind})"
        )
    teacher.eval()
    q_final, q_layers = _encode_all(teacher, queries, "query", batch_size)
    p_final, p_layers = _encode_all(teacher, passages, "passage", batch_size)
    with atomic_dir(folder) as tmp:
        save_file(
            {"q_final": q_final, "q_layers": q_layers, "p_final": p_final, "p_layers": p_layers},
            str(tmp / FEATURES),
        )
        (tmp / TEXTS).write_text(
            json.dumps({"queries": queries, "passages": passages}), encoding="utf-8"
        )
        manifest = {
            "kind": KIND,
            "complete": True,
            "teacher": signature,
            "queries": len(queries),
            "passages": len(passages),
            "layers": teacher.num_layers,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def _same_texts(folder: Path, queries: list[str], passages: list[str]) -> bool:
    texts = json.loads((folder / TEXTS).read_text(encoding="utf-8"))
    return texts["queries"] == queries and texts["passages"] == passages


class CachedDualEncoder(DualEncoder):
    """A frozen `DualEncoder` whose `encode` looks its vectors up in a feature cache."""

    def __init__(self, live: DualEncoder, folder: str | Path):
        super().__init__(
            live.query_backbone,
            live.tokenizer,
            passage_backbone=live.passage_backbone,
            pooling=live.pooling,
            normalize=live.normalize,
            dense=list(live.dense),
            prompts=live.prompts,
            scale=live.scale,
            max_query_length=live.max_query_length,
            max_doc_length=live.max_doc_length,
        )
        # not frozen here: a student copies these blocks (init_from: teacher) with their flags;
        # LeadModel freezes the teacher after the student is built
        folder = Path(folder)
        tensors = load_file(str(folder / FEATURES))
        texts = json.loads((folder / TEXTS).read_text(encoding="utf-8"))
        # plain attributes, not buffers: checkpoints and exports stay the size of the model
        self._final = {"query": tensors["q_final"], "passage": tensors["p_final"]}
        self._layers = {"query": tensors["q_layers"], "passage": tensors["p_layers"]}
        self._rows = {
            "query": {t: i for i, t in enumerate(texts["queries"])},
            "passage": {t: i for i, t in enumerate(texts["passages"])},
        }
        self.folder = folder
        if self._layers["query"].shape[0] != self.num_layers:
            raise ConfigError(
                f"{folder}: cache has {self._layers['query'].shape[0]} layers, "
                f"the teacher {self.num_layers}"
            )

    def _lookup(self, texts: list[str], side: str) -> torch.Tensor:
        rows = self._rows[side]
        missing = [t for t in texts if t not in rows]
        if missing:
            raise ValueError(
                f"{self.folder}: {len(missing)} {side} text(s) not in the teacher cache, "
                f"e.g. {missing[0][:80]!r} (rebuild the cache over the training texts)"
            )
        return torch.tensor([rows[t] for t in texts])

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        idx = self._lookup(list(texts), side)
        final = self._final[side][idx].to(self.device)  # [B, D]
        layer_vecs = (
            self._layers[side][:, idx][list(layers)].to(self.device) if layers else None
        )  # [L, B, H]
        return Encoded(final=final, layers=layer_vecs)


def load_cached_teacher(cfg: TeacherConfig, folder: str | Path) -> CachedDualEncoder:
    """The teacher `cfg` names, answered from the cache in `folder` (which must match it)."""
    from lead_ray.models.build import build_teacher

    folder = Path(folder)
    manifest = read_manifest(folder)
    if not (manifest and manifest.get("complete") and manifest.get("kind") == KIND):
        raise ConfigError(
            f"teacher.cache: {folder} is not a complete teacher feature cache "
            "(build it with `lead cache-teacher CONFIG --out DIR`)"
        )
    if manifest.get("teacher") != teacher_signature(cfg):
        raise ConfigError(
            f"teacher.cache: {folder} was built for another teacher or other settings "
            f"({manifest.get('teacher')}); rebuild it"
        )
    live = build_teacher(cfg)
    return CachedDualEncoder(live, folder)
