"""Cross-encoder: query and passage read together; one linear head on [CLS] gives the score.

As in the LEAD code, the same head scores every block's [CLS], which gives the layer scores;
candidates are each query's own 1+n passages. The pair is truncated to the backbone's maximum
length (max_query_length + max_doc_length, capped by its position embeddings).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lead_ray.config import TeacherConfig
from lead_ray.models.backbone import Backbone
from lead_ray.models.base import Retriever, Scores, lengths, load_head, save_with_head

HEAD = "lead_head.safetensors"


class CrossEncoder(Retriever):
    kind = "cross_encoder"
    all_pairs = False  # each pair is read together: only a query's own candidates are scored

    def __init__(
        self,
        backbone: Backbone,
        tokenizer,
        *,
        max_query_length: int = 32,
        max_doc_length: int = 128,
    ):
        super().__init__(
            tokenizer, max_query_length=max_query_length, max_doc_length=max_doc_length
        )
        self.backbone = backbone
        self.head = nn.Linear(backbone.hidden_size, 1)

    @classmethod
    def from_config(
        cls, cfg: TeacherConfig, backbone: Backbone, tokenizer, folder: str | None
    ) -> CrossEncoder:
        model = cls(backbone, tokenizer, **lengths(cfg))
        load_head(model.head, folder, HEAD)
        return model

    def save(self, folder: Path) -> dict:
        save_with_head(self.backbone, self.head, folder, HEAD)
        return {}

    @property
    def max_length(self) -> int:
        return min(self.max_query_length + self.max_doc_length, self.backbone.max_positions)

    def tokenize_pairs(self, queries: list[str], passages: list[str]) -> dict[str, torch.Tensor]:
        """`[CLS] query [SEP] passage [SEP]`, at most `max_length` tokens. -> [P, T]

        The query is first cut to `max_query_length` tokens (at a character offset, so any
        tokenizer works; at most half the room when positions are scarce); the passage then
        fills the rest up to `max_length`.
        """
        # the query never takes more than half the room when the budget is tight
        room = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True)
        q_max = max(1, min(self.max_query_length, room - min(self.max_doc_length, room // 2)))
        enc = self.tokenizer(queries, add_special_tokens=False, return_offsets_mapping=True)
        cut = [
            q if len(offsets) <= q_max else q[: offsets[q_max - 1][1]]
            for q, offsets in zip(queries, enc["offset_mapping"], strict=True)
        ]
        batch = self.tokenizer(
            cut,
            passages,
            padding="longest",
            truncation="only_second",
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask")}

    def scores(self, queries, passages, layers=(), *, own=True, gather=None) -> Scores:
        """B queries, each with its own N = len(passages) / B passages (query-major order).

        -> final [B, N], layers [L, B, N]
        """
        if not own or gather is not None:
            raise ValueError("a cross-encoder scores only each query's own candidates")
        queries, passages = list(queries), list(passages)
        b = len(queries)
        n = len(passages) // b
        repeated = [q for q in queries for _ in range(n)]
        tok = self.tokenize_pairs(repeated, passages)
        states = self.backbone(tok["input_ids"], tok["attention_mask"])  # n_layers x [B*N, T, H]
        final = self.head(states[-1][:, 0]).view(b, n)  # [B, N]
        if layers:
            cls = torch.stack([states[i][:, 0] for i in layers])  # [L, B*N, H]
            layer_scores = self.head(cls).view(len(layers), b, n)  # [L, B, N]
        else:
            layer_scores = final.new_zeros((0, b, n))
        return Scores(final=final, layers=layer_scores)
