"""Dual encoder: a query and a passage become one vector each; score = dot product (of
L2-normalised vectors, cosine, when the model normalises).

A vector is the model's own head over a block's token states: pooling, then the
sentence-transformers Dense modules, then normalisation when the model ends in Normalize. The
final vector applies it to the last block; layer l's representation applies the same head to
block l, as the LEAD code applies a model's head to every layer (with the LEAD code's own models,
CLS pooling and no Dense or Normalize, that is the raw pooled state). Prompts ("query: ") are put
before the text of their side everywhere the model reads text. A saved dual encoder is also a
complete sentence-transformers folder; `query/` holds the query tower when the towers are
separate (the root is the passage tower), and such a folder is not a sentence-transformers model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lead_ray.config import ConfigError, EncoderConfig
from lead_ray.models.backbone import Backbone, load_backbone
from lead_ray.models.base import BiEncoder, Encoded, Scores, lengths
from lead_ray.models.formats import ACTIVATIONS, read_meta, read_sentence_transformers
from lead_ray.models.scoring import POOLING, dot_scores
from lead_ray.models.tokenize import tokenize

QUERY_TOWER = "query"
COSINE_SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default
_ACTIVATION_MODULES = {
    "identity": nn.Identity,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class DenseLayer(nn.Module):
    """A sentence-transformers Dense module (same parameter names: `linear.weight`, `.bias`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activation: str):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_name = activation
        self.activation = _ACTIVATION_MODULES[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        return self.activation(self.linear(x))


@dataclass
class Head:
    """What turns a block's token states into a vector, as the model folder declares it."""

    pooling: str = "cls"
    normalize: bool = False
    dense: list[DenseLayer] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)  # "query" / "passage" -> prefix
    scale: float | None = None


def declared_head(folder: str | None) -> Head:
    """The head a folder declares: its sentence-transformers modules (pooling, Dense with its
    weights, Normalize, prompts), then what lead-ray recorded (`lead_model.json`)."""
    head = Head(pooling="")
    if folder is None:
        return head
    st = read_sentence_transformers(folder)
    if st is not None:
        head.pooling, head.normalize, head.prompts = st.pooling or "", st.normalize, st.prompts
        for d in st.dense:
            layer = DenseLayer(d.in_features, d.out_features, d.bias, d.activation)
            layer.load_state_dict(load_file(str(d.folder / "model.safetensors")))
            head.dense.append(layer)
    meta = read_meta(folder) or {}
    for key in ("pooling", "normalize", "prompts", "scale"):
        if key in meta:
            setattr(head, key, meta[key])
    return head


def resolve_pooling(cfg: EncoderConfig, folder: str | None) -> tuple[str, bool]:
    """`auto` pooling / unset normalisation resolved from what the folder declares, else cls
    pooling without normalisation."""
    head = declared_head(folder)
    pooling = cfg.pooling if cfg.pooling != "auto" else (head.pooling or "cls")
    return pooling, cfg.normalize if cfg.normalize is not None else bool(head.normalize)


def resolve_head(cfg: EncoderConfig, declared: Head) -> Head:
    """The config's settings where given, else the declared ones; the scale by similarity."""
    pooling = cfg.pooling if cfg.pooling != "auto" else (declared.pooling or "cls")
    normalize = cfg.normalize if cfg.normalize is not None else bool(declared.normalize)
    prompts = dict(declared.prompts)
    for side, given in (("query", cfg.query_prompt), ("passage", cfg.passage_prompt)):
        if given is not None:
            prompts[side] = given
    scale = cfg.scale or declared.scale or (COSINE_SCALE if normalize else 1.0)
    return Head(pooling, normalize, declared.dense, {k: v for k, v in prompts.items() if v}, scale)


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
        dense: Sequence[DenseLayer] = (),
        prompts: dict[str, str] | None = None,
        scale: float = 1.0,
        max_query_length: int = 32,
        max_doc_length: int = 128,
    ):
        super().__init__(
            tokenizer, max_query_length=max_query_length, max_doc_length=max_doc_length
        )
        if pooling not in POOLING:
            raise ConfigError(f"pooling {pooling!r}: one of {', '.join(POOLING)}")
        self.query_backbone = query_backbone
        self.passage_backbone = passage_backbone  # None: shared towers
        self.pooling, self.normalize, self.scale = pooling, normalize, scale
        self.dense = nn.ModuleList(dense)
        self.prompts = dict(prompts or {})
        self.pad_to_max = False  # set by the trainer when token tensors are gathered

    @classmethod
    def from_config(
        cls,
        cfg: EncoderConfig,
        backbone: Backbone,
        tokenizer,
        folder: str | None,
        declared: Head | None = None,
    ) -> DualEncoder:
        """The config's pooling, normalisation, prompts and scale where given, else the folder's
        (or `declared`, a head inherited from a teacher); the query tower from `folder/query`
        when the folder has one, a copy when `shared_towers` is off."""
        head = resolve_head(cfg, declared_head(folder) if declared is None else declared)
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
            pooling=head.pooling,
            normalize=head.normalize,
            dense=head.dense,
            prompts=head.prompts,
            scale=head.scale,
            **towers,
            **lengths(cfg),
        )

    def declared(self) -> Head:
        """This model's head, for a student that starts as its copy (`init_from: teacher`)."""
        return Head(
            self.pooling,
            self.normalize,
            [copy.deepcopy(d) for d in self.dense],
            dict(self.prompts),
            self.scale,
        )

    @property
    def num_layers(self) -> int:
        return self.query_backbone.num_layers

    @property
    def dim(self) -> int:
        return (
            self.dense[-1].linear.out_features
            if len(self.dense)
            else self.query_backbone.hidden_size
        )

    def head(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooling, Dense modules, normalisation: states [B, T, H], mask [B, T] -> [B, D]."""
        vec = POOLING[self.pooling](states, mask)
        for layer in self.dense:
            vec = layer(vec)
        return F.normalize(vec, dim=-1) if self.normalize else vec

    def with_prompt(self, texts: Sequence[str], side: str) -> list[str]:
        prompt = self.prompts.get(side, "")
        return [prompt + t for t in texts] if prompt else list(texts)

    def backbone_for(self, side: str) -> Backbone:
        if side == "query" or self.passage_backbone is None:
            return self.query_backbone
        return self.passage_backbone

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        """Encode texts of one side ("query" or "passage"); `layers` are block indices."""
        max_len = self.max_query_length if side == "query" else self.max_doc_length
        tok = tokenize(
            self.tokenizer, self.with_prompt(texts, side), max_len, self.pad_to_max, self.device
        )
        mask = tok["attention_mask"]
        states = self.backbone_for(side)(tok["input_ids"], mask)  # n_layers x [B, T, H]
        final = self.head(states[-1], mask)  # [B, D]
        layer_vecs = torch.stack([self.head(states[i], mask) for i in layers]) if layers else None
        return Encoded(final=final, layers=layer_vecs)  # layers [L, B, D]

    def score_encoded(self, q: Encoded, p: Encoded) -> Scores:
        """Every query against every passage: final [B, M], layers [L, B, M] (unscaled)."""
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
        """Weights (both towers when separate); with shared towers, the sentence-transformers
        files too (similarity, prompts, Dense modules), so `SentenceTransformer(folder)` loads
        it as trained."""
        (self.passage_backbone or self.query_backbone).model.save_pretrained(
            folder, safe_serialization=True
        )
        if self.passage_backbone is not None:
            self.query_backbone.model.save_pretrained(folder / QUERY_TOWER, safe_serialization=True)
            self.tokenizer.save_pretrained(folder / QUERY_TOWER)
        else:
            _save_sentence_transformers(folder, self)
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "scale": self.scale,
            "prompts": self.prompts,
            "shared_towers": self.passage_backbone is None,
        }


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def _save_sentence_transformers(folder: Path, model: DualEncoder) -> None:
    """modules.json, 1_Pooling/, N_Dense/, Normalize, sentence_bert_config.json and
    config_sentence_transformers.json: what `SentenceTransformer(folder)` reads."""
    base = "sentence_transformers.models."
    modules = [
        {"path": "", "type": base + "Transformer"},
        {"path": "1_Pooling", "type": base + "Pooling"},
    ]
    hidden = model.query_backbone.hidden_size
    modes = {
        "cls": "cls_token",
        "mean": "mean_tokens",
        "max": "max_tokens",
        "lasttoken": "lasttoken",
    }
    pool = {f"pooling_mode_{mode}": name == model.pooling for name, mode in modes.items()}
    # the legacy keys: every sentence-transformers version reads them
    _write_json(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": hidden, **pool, "pooling_mode_mean_sqrt_len_tokens": False},
    )
    names = {v: k for k, v in ACTIVATIONS.items()}
    for i, layer in enumerate(model.dense, start=2):
        path = f"{i}_Dense"
        modules.append({"path": path, "type": base + "Dense"})
        lin = layer.linear
        _write_json(
            folder / path / "config.json",
            {
                "in_features": lin.in_features,
                "out_features": lin.out_features,
                "bias": lin.bias is not None,
                "activation_function": names[layer.activation_name],
            },
        )
        save_file(
            {k: v.contiguous() for k, v in layer.state_dict().items()},
            str(folder / path / "model.safetensors"),
        )
    if model.normalize:
        path = f"{len(modules)}_Normalize"
        modules.append({"path": path, "type": base + "Normalize"})
        (folder / path).mkdir(exist_ok=True)
    modules = [{"idx": i, "name": str(i), **m} for i, m in enumerate(modules)]
    _write_json(folder / "modules.json", modules)
    _write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": model.max_doc_length, "do_lower_case": False},
    )
    prompts = {
        "query": model.prompts.get("query", ""),
        "document": model.prompts.get("passage", ""),
    }
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "similarity_fn_name": "cosine" if model.normalize else "dot",
            "prompts": {k: v for k, v in prompts.items() if v},
            "default_prompt_name": None,
        },
    )
