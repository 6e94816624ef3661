"""ColBERT: late interaction over token vectors; score = sum over query tokens of the best
passage-token match (MaxSim).

Defaults follow the LEAD code (docs/method.md): no projection, the final layer's token vectors
L2-normalised, intermediate layers' raw states, queries padded with [MASK] to the maximum
length (attended and scored: query augmentation), [CLS] replaced by a [Q]/[D] marker. Layer
scores of raw states are much larger than the cosine final score; `normalize_layers` changes that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lead_ray.config import ColBERTOptions, TeacherConfig
from lead_ray.models.backbone import Backbone
from lead_ray.models.base import BiEncoder, Encoded, Scores, lengths, load_head, save_with_head
from lead_ray.models.scoring import maxsim_scores
from lead_ray.models.tokenize import tokenize

QUERY_MARKER, DOC_MARKER = "[unused0]", "[unused1]"
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
        self._markers = (
            (vocab.get(QUERY_MARKER), vocab.get(DOC_MARKER)) if options.markers else (None, None)
        )

    @classmethod
    def from_config(
        cls, cfg: TeacherConfig, backbone: Backbone, tokenizer, folder: str | None
    ) -> ColBERT:
        model = cls(backbone, tokenizer, cfg.colbert, **lengths(cfg))
        load_head(model.proj, folder, PROJECTION)
        return model

    def save(self, folder: Path) -> dict:
        save_with_head(self.backbone, self.proj, folder, PROJECTION)
        return {"colbert": self.options.model_dump()}

    def _tokens(self, texts: list[str], side: str) -> dict[str, torch.Tensor]:
        is_query = side == "query"
        max_len = self.max_query_length if is_query else self.max_doc_length
        augment = is_query and self.options.query_augmentation
        tok = tokenize(self.tokenizer, texts, max_len, self.pad_to_max or augment, self.device)
        ids, mask = tok["input_ids"], tok["attention_mask"]
        if augment:  # [PAD] -> [MASK], attended and scored
            pad = mask == 0
            ids = ids.masked_fill(pad, self.tokenizer.mask_token_id)
            mask = torch.ones_like(mask)
        marker = self._markers[0 if is_query else 1]
        if marker is not None:
            ids = ids.clone()
            ids[:, 0] = marker
        return {"input_ids": ids, "attention_mask": mask}

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        tok = self._tokens(list(texts), side)
        states = self.backbone(tok["input_ids"], tok["attention_mask"])  # n x [B, T, H]
        final = states[-1] if self.proj is None else self.proj(states[-1])  # [B, T, D]
        if self.options.normalize:
            final = F.normalize(final, dim=-1)
        layer_states = None
        if layers:
            layer_states = torch.stack([states[i] for i in layers])  # [L, B, T, H]
            if self.options.normalize_layers:
                layer_states = F.normalize(layer_states, dim=-1)
        return Encoded(final=final, layers=layer_states, mask=tok["attention_mask"])

    def score_encoded(self, q: Encoded, p: Encoded) -> Scores:
        final = maxsim_scores(q.final, q.mask, p.final, p.mask)  # [B, M]
        if q.layers is None or p.layers is None:
            layers = final.new_zeros((0, *final.shape))
        else:
            layers = maxsim_scores(q.layers, q.mask, p.layers, p.mask)  # [L, B, M]
        return Scores(final=final, layers=layers)
