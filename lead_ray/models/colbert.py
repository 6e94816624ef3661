"""ColBERT: late interaction over token vectors; score = sum over query tokens of the best
passage-token match (MaxSim).

Defaults follow the LEAD code (docs/method.md): no projection, the final layer's token vectors
L2-normalised, intermediate layers' raw states, queries padded with [MASK] to the maximum
length (attended and scored: query augmentation), [CLS] replaced by a [Q]/[D] marker.

A published checkpoint brings its own conventions, read from its folder:
- colbert-ai (`artifact.metadata`; `linear.weight` beside the BERT weights): markers
  `[unused0]`/`[unused1]` inserted after [CLS], query [MASK]s scored but not attended, document
  punctuation never matched, lengths and projection from the checkpoint;
- PyLate (a sentence-transformers folder: Transformer, Dense; `query_prefix` / `document_prefix`
  in its config): the prefix tokens inserted after [CLS], the same query expansion and
  punctuation rules, the Dense module as projection.
Their head (projection, then normalisation) scores every layer, as the LEAD code applies a
model's head to every layer; settings given explicitly in `teacher.colbert` still win.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from lead_ray.config import ColBERTOptions, ConfigError, TeacherConfig
from lead_ray.models.backbone import Backbone
from lead_ray.models.base import BiEncoder, Encoded, Scores, lengths, load_head, save_with_head
from lead_ray.models.formats import COLBERT_AI, ST_CONFIG, read_sentence_transformers
from lead_ray.models.scoring import maxsim_scores

PROJECTION = "lead_proj.safetensors"


class ColBERT(BiEncoder):
    kind = "colbert"

    def __init__(
        self,
        backbone: Backbone,
        tokenizer,
        options: ColBERTOptions = ColBERTOptions(),
        *,
        max_query_length: int = 32,
        max_doc_length: int = 128,
    ):
        super().__init__(
            tokenizer, max_query_length=max_query_length, max_doc_length=max_doc_length
        )
        self.backbone, self.options = backbone, options
        self.pad_to_max = False
        self.proj = (
            nn.Linear(backbone.hidden_size, options.dim, bias=False) if options.dim else None
        )
        vocab = tokenizer.get_vocab()
        markers = [vocab.get(t) for t in options.marker_tokens] if options.markers else [None, None]
        if options.markers and None in markers:
            raise ConfigError(
                f"colbert.marker_tokens {options.marker_tokens}: not in the tokenizer"
            )
        self._markers = dict(zip(("query", "passage"), markers, strict=True))
        self._skip = (
            {vocab[c] for c in string.punctuation if c in vocab}
            if options.mask_punctuation
            else set()
        )

    @classmethod
    def from_config(
        cls, cfg: TeacherConfig, backbone: Backbone, tokenizer, folder: str | None
    ) -> ColBERT:
        """The folder's conventions and projection (colbert-ai, PyLate, or lead-ray's own), with
        what the config sets explicitly on top."""
        declared, dims, weight = published_conventions(folder) if folder else ({}, {}, None)
        explicit = {k: getattr(cfg.colbert, k) for k in cfg.colbert.model_fields_set}
        options = ColBERTOptions(**{**cfg.colbert.model_dump(), **declared, **explicit})
        sizes = {**lengths(cfg), **{k: v for k, v in dims.items() if k not in cfg.model_fields_set}}
        model = cls(backbone, tokenizer, options, **sizes)
        if weight is not None:
            model.proj.weight.data.copy_(weight)
        elif (
            model.proj is not None
            and folder is not None
            and not (Path(folder) / PROJECTION).is_file()
        ):
            if not cfg.new_head:
                raise ConfigError(
                    f"teacher.model {folder}: colbert.dim={options.dim} but the folder "
                    f"has no projection (no {PROJECTION}, no colbert-ai `linear.weight`, "
                    "no PyLate Dense); set teacher.new_head: true to start one at random"
                )
        else:
            load_head(model.proj, folder, PROJECTION)
        return model

    def save(self, folder: Path) -> dict:
        save_with_head(self.backbone, self.proj, folder, PROJECTION)
        return {"colbert": self.options.model_dump(mode="json")}

    def _tokens(self, texts: list[str], side: str) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (what BERT attends), score_mask (what MaxSim scores) [B, T]."""
        opts, is_query = self.options, side == "query"
        max_len = self.max_query_length if is_query else self.max_doc_length
        marker = self._markers[side]
        insert = marker is not None and opts.marker_position == "after_cls"
        ids = self.tokenizer(texts, truncation=True, max_length=max_len - insert)["input_ids"]
        if insert:  # [CLS] [Q] text ... [SEP] (colbert-ai, PyLate)
            ids = [x[:1] + [marker] + x[1:] for x in ids]
        elif marker is not None:  # [Q] text ... [SEP] (the LEAD code)
            ids = [[marker] + x[1:] for x in ids]
        augment = is_query and opts.query_augmentation
        width = max_len if augment or self.pad_to_max else max(map(len, ids))
        fill = self.tokenizer.mask_token_id if augment else (self.tokenizer.pad_token_id or 0)
        out = torch.full((len(ids), width), fill, dtype=torch.long)
        real = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
            real[i, : len(x)] = 1
        attend = torch.ones_like(real) if augment and opts.attend_to_mask else real
        score = torch.ones_like(real) if augment else real.clone()  # query [MASK]s are scored
        if self._skip and not is_query:  # punctuation is never matched
            score[torch.isin(out, torch.tensor(sorted(self._skip)))] = 0
        return {
            k: v.to(self.device)
            for k, v in (("input_ids", out), ("attention_mask", attend), ("score_mask", score))
        }

    def _head(self, states: torch.Tensor, normalize: bool) -> torch.Tensor:
        """Projection (when the model has one), then normalisation: [..., T, H] -> [..., T, D]."""
        out = states if self.proj is None else self.proj(states)
        return F.normalize(out, dim=-1) if normalize else out

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        tok = self._tokens(list(texts), side)
        states = self.backbone(tok["input_ids"], tok["attention_mask"])  # n x [B, T, H]
        final = self._head(states[-1], self.options.normalize)  # [B, T, D]
        layer_states = None
        if layers:  # [L, B, T, D]
            layer_states = self._head(
                torch.stack([states[i] for i in layers]), self.options.normalize_layers
            )
        return Encoded(final=final, layers=layer_states, mask=tok["score_mask"])

    def score_encoded(self, q: Encoded, p: Encoded) -> Scores:
        final = maxsim_scores(q.final, q.mask, p.final, p.mask)  # [B, M]
        if q.layers is None or p.layers is None:
            layers = final.new_zeros((0, *final.shape))
        else:
            layers = maxsim_scores(q.layers, q.mask, p.layers, p.mask)  # [L, B, M]
        return Scores(final=final, layers=layers)


def published_conventions(folder: str) -> tuple[dict, dict, torch.Tensor | None]:
    """What a colbert-ai or PyLate folder declares: ColBERTOptions fields, max lengths and the
    projection weight [D, H]; ({}, {}, None) for any other folder.

    Raises:
        ConfigError: the projection is missing, naming the tensor and file looked for.
    """
    root = Path(folder)
    if (root / COLBERT_AI).is_file():
        meta = json.loads((root / COLBERT_AI).read_text(encoding="utf-8"))
        weights = sorted(root.glob("*.safetensors"))
        weight = _tensor(weights, "linear.weight", root)
        return (
            {
                "dim": weight.shape[0],
                "marker_tokens": (
                    meta.get("query_token_id", "[unused0]"),
                    meta.get("doc_token_id", "[unused1]"),
                ),
                "marker_position": "after_cls",
                "query_augmentation": True,
                "attend_to_mask": bool(meta.get("attend_to_mask_tokens", False)),
                "mask_punctuation": bool(meta.get("mask_punctuation", True)),
                "normalize_layers": True,
            },
            {
                "max_query_length": int(meta.get("query_maxlen", 32)),
                "max_doc_length": int(meta.get("doc_maxlen", 180)),
            },
            weight,
        )
    st = read_sentence_transformers(root)
    if st is not None and "query_prefix" in st.config:
        if len(st.dense) != 1 or st.dense[0].bias or st.dense[0].activation != "identity":
            raise ConfigError(
                f"{root}: a PyLate ColBERT with {len(st.dense)} Dense modules; "
                "lead-ray reads one linear projection without bias"
            )
        weight = _tensor([st.dense[0].folder / "model.safetensors"], "linear.weight", root)
        cfg = st.config
        return (
            {
                "dim": weight.shape[0],
                "marker_tokens": (cfg["query_prefix"], cfg["document_prefix"]),
                "marker_position": "after_cls",
                "query_augmentation": bool(cfg.get("do_query_expansion", True)),
                "attend_to_mask": bool(cfg.get("attend_to_expansion_tokens", False)),
                "mask_punctuation": bool(cfg.get("skiplist_words")),
                "normalize_layers": True,
            },
            {
                "max_query_length": int(cfg.get("query_length", 32)),
                "max_doc_length": int(cfg.get("document_length", 180)),
            },
            weight,
        )
    return {}, {}, None


def _tensor(files: list[Path], name: str, root: Path) -> torch.Tensor:
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            if name in fh.keys():
                return fh.get_tensor(name)
    raise ConfigError(
        f"{root}: no tensor {name!r} in {[f.name for f in files] or 'any safetensors file'} "
        f"(the ColBERT projection); see {ST_CONFIG} / {COLBERT_AI}"
    )
