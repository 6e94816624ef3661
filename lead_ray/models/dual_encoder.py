"""Dual encoder: a query and a passage become one vector each; score = dot product.

Layer l's representation is the pooled hidden state of block l (raw, not normalised, as in the
LEAD code), so the layer score is the dot of that layer's pooled vectors. A saved dual encoder
is also a sentence-transformers folder (modules.json, 1_Pooling/, 2_Normalize/), and `query/`
holds the query tower when the towers are separate (the root is the passage tower).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from lead_ray.config import EncoderConfig
from lead_ray.models.backbone import Backbone, load_backbone
from lead_ray.models.base import BiEncoder, Encoded, Scores, lengths
from lead_ray.models.scoring import dot_scores, pool_cls, pool_mean
from lead_ray.models.tokenize import tokenize

QUERY_TOWER = "query"


class DualEncoder(BiEncoder):
    kind = "dual_encoder"

    def __init__(
        self,
        query_backbone: Backbone,
        tokenizer,
        *,
        passage_backbone: Backbone | None = None,
        pooling: str = "cls",
        normalize: bool = False,
        max_query_length: int = 32,
        max_doc_length: int = 128,
    ):
        super().__init__(
            tokenizer, max_query_length=max_query_length, max_doc_length=max_doc_length
        )
        self.query_backbone = query_backbone
        self.passage_backbone = passage_backbone  # None: shared towers
        self.pooling, self.normalize = pooling, normalize
        self.pad_to_max = False  # set by the trainer when token tensors are gathered

    @classmethod
    def from_config(
        cls, cfg: EncoderConfig, backbone: Backbone, tokenizer, folder: str | None
    ) -> DualEncoder:
        """Pooling and normalisation as `cfg` says, else as the folder declares; the query tower
        from `folder/query` when the folder has one, a copy when `shared_towers` is off."""
        pooling, normalize = resolve_pooling(cfg, folder)
        query_tower = None
        if folder is not None and (Path(folder) / QUERY_TOWER).is_dir():
            query_tower = load_backbone(str(Path(folder) / QUERY_TOWER))
        elif not cfg.shared_towers:
            query_tower = Backbone(copy.deepcopy(backbone.model))
        towers = {"passage_backbone": backbone} if query_tower is not None else {}
        # separate towers: the root folder is the passage tower, `query/` the query tower
        return cls(
            backbone if query_tower is None else query_tower,
            tokenizer,
            pooling=pooling,
            normalize=normalize,
            **towers,
            **lengths(cfg),
        )

    @property
    def num_layers(self) -> int:
        return self.query_backbone.num_layers

    @property
    def dim(self) -> int:
        return self.query_backbone.hidden_size

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool_cls(states, mask) if self.pooling == "cls" else pool_mean(states, mask)

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        """Encode texts of one side ("query" or "passage"); `layers` are block indices."""
        is_query = side == "query"
        backbone = (
            self.query_backbone
            if is_query or self.passage_backbone is None
            else self.passage_backbone
        )
        max_len = self.max_query_length if is_query else self.max_doc_length
        tok = tokenize(self.tokenizer, list(texts), max_len, self.pad_to_max, self.device)
        states = backbone(tok["input_ids"], tok["attention_mask"])  # n_layers x [B, T, H]
        mask = tok["attention_mask"]
        final = self._pool(states[-1], mask)  # [B, H]
        if self.normalize:
            final = F.normalize(final, dim=-1)
        layer_vecs = None
        if layers:
            layer_vecs = torch.stack([self._pool(states[i], mask) for i in layers])  # [L, B, H]
        return Encoded(final=final, layers=layer_vecs)

    def score_encoded(self, q: Encoded, p: Encoded) -> Scores:
        """Every query against every passage: final [B, M], layers [L, B, M]."""
        final = dot_scores(q.final, p.final)
        if q.layers is None or p.layers is None:
            layers = final.new_zeros((0, *final.shape))
        else:
            layers = dot_scores(q.layers, p.layers)  # [L, B, M]
        return Scores(final=final, layers=layers)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], side: str) -> torch.Tensor:
        """Final vectors for inference (encoding, mining, search): [B, D]."""
        return self.encode(texts, side).final

    def save(self, folder: Path) -> dict:
        """Weights (both towers when separate) and the sentence-transformers files."""
        (self.passage_backbone or self.query_backbone).model.save_pretrained(
            folder, safe_serialization=True
        )
        if self.passage_backbone is not None:
            self.query_backbone.model.save_pretrained(folder / QUERY_TOWER, safe_serialization=True)
            self.tokenizer.save_pretrained(folder / QUERY_TOWER)
        _save_sentence_transformers(folder, self)
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "shared_towers": self.passage_backbone is None,
        }


def resolve_pooling(cfg: EncoderConfig, folder: str | None) -> tuple[str, bool]:
    """`auto` pooling / unset normalisation resolved from what the folder declares (our
    `lead_model.json`, else its sentence-transformers modules), else cls without normalisation."""
    from lead_ray.models.build import read_meta

    declared_pool, declared_norm = None, None
    if folder is not None:
        declared_pool, declared_norm = sentence_transformers_pooling(folder)
        meta = read_meta(folder)
        if meta:
            declared_pool, declared_norm = meta.get("pooling"), meta.get("normalize")
    pooling = cfg.pooling if cfg.pooling != "auto" else (declared_pool or "cls")
    normalize = cfg.normalize if cfg.normalize is not None else bool(declared_norm)
    return pooling, normalize


def sentence_transformers_pooling(folder: str) -> tuple[str | None, bool | None]:
    """Pooling ('cls'/'mean') and normalisation declared by a sentence-transformers folder."""
    root = Path(folder)
    modules = root / "modules.json"
    if not modules.is_file():
        return None, None
    entries = json.loads(modules.read_text(encoding="utf-8"))
    pooling, normalize = None, False
    for entry in entries:
        kind = entry.get("type", "")
        if kind.endswith("Pooling"):
            cfg = json.loads((root / entry["path"] / "config.json").read_text(encoding="utf-8"))
            pooling = "cls" if cfg.get("pooling_mode_cls_token") else "mean"
        if kind.endswith("Normalize"):
            normalize = True
    return pooling, normalize


def _save_sentence_transformers(folder: Path, model: DualEncoder) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if model.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool = {
        "word_embedding_dimension": model.dim,
        "pooling_mode_cls_token": model.pooling == "cls",
        "pooling_mode_mean_tokens": model.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool, indent=2), encoding="utf-8")
    st_cfg = {"max_seq_length": model.max_doc_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(
        json.dumps(st_cfg, indent=2), encoding="utf-8"
    )
