"""Dual encoder: a query and a passage become one vector each; score = dot product.

Layer l's representation is the pooled hidden state of block l (raw, not normalised, as in the
LEAD code), so the layer score is the dot of that layer's pooled vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lead_ray.modeling.backbone import Backbone
from lead_ray.modeling.outputs import Encoded, Scores
from lead_ray.modeling.tokenize import tokenize
from lead_ray.scoring import dot_scores, pool_cls, pool_mean


class DualEncoder(nn.Module):
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
        super().__init__()
        self.query_backbone = query_backbone
        self.passage_backbone = passage_backbone  # None: shared towers
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_query_length = max_query_length
        self.max_doc_length = max_doc_length
        self.pad_to_max = False  # set by the trainer when token tensors are gathered

    @property
    def num_layers(self) -> int:
        return self.query_backbone.num_layers

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool_cls(states, mask) if self.pooling == "cls" else pool_mean(states, mask)

    def encode(self, texts: list[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        """Encode texts of one side ("query" or "passage"); `layers` are block indices."""
        is_query = side == "query"
        backbone = self.query_backbone if is_query or self.passage_backbone is None else self.passage_backbone
        max_len = self.max_query_length if is_query else self.max_doc_length
        tok = tokenize(self.tokenizer, texts, max_len, self.pad_to_max, self.device)
        states = backbone(tok["input_ids"], tok["attention_mask"])  # n_layers x [B, T, H]
        mask = tok["attention_mask"]
        final = self._pool(states[-1], mask)  # [B, H]
        if self.normalize:
            final = F.normalize(final, dim=-1)
        layer_vecs = None
        if layers:
            layer_vecs = torch.stack([self._pool(states[i], mask) for i in layers])  # [L, B, H]
        return Encoded(final=final, layers=layer_vecs)

    def encode_queries(self, texts: list[str], layers: Sequence[int] = ()) -> Encoded:
        return self.encode(texts, "query", layers)

    def encode_passages(self, texts: list[str], layers: Sequence[int] = ()) -> Encoded:
        return self.encode(texts, "passage", layers)

    def score(self, q: Encoded, p: Encoded) -> Scores:
        """Every query against every passage: final [B, M], layers [L, B, M]."""
        final = dot_scores(q.final, p.final)
        if q.layers is None or p.layers is None:
            layers = final.new_zeros((0, *final.shape))
        else:
            layers = dot_scores(q.layers, p.layers)  # [L, B, M]
        return Scores(final=final, layers=layers)

    @torch.inference_mode()
    def embed(self, texts: list[str], side: str) -> torch.Tensor:
        """Final vectors for inference (encoding, mining, search): [B, D]."""
        return self.encode(texts, side).final
