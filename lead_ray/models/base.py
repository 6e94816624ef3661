"""The one interface every retrieval model offers: per-layer scores of queries against candidates.

`Retriever.scores(queries, passages, layers, own=..., gather=...)` is what training (teacher and
student), mining, re-ranking and evaluation call; nothing outside `lead_ray/models/` needs to know
which kind a model is. Bi-encoders (dual encoder, ColBERT, the cached teacher) encode each side
apart and can score every query against every passage of a batch (in-batch negatives, gathered
across workers); a cross-encoder reads each (query, passage) pair together and scores only a
query's own candidates (`all_pairs = False`).

Shapes: B queries, N candidates per query, M = all candidates of the batch, L requested layers,
T tokens, H hidden size, D output size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from lead_ray.models.scoring import own_candidates

Gather = Callable[[torch.Tensor, int], torch.Tensor]  # (tensor, batch_dim) -> gathered tensor


@dataclass
class Encoded:
    """One side (queries or passages) encoded by a bi-encoder.

    final:  dual encoder [B, D]; ColBERT [B, T, D] (token vectors)
    layers: the requested blocks, dual encoder [L, B, H]; ColBERT [L, B, T, H]; None if none asked
    mask:   ColBERT token mask [B, T] (1 = scored position); None for a dual encoder
    """

    final: torch.Tensor
    layers: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def map(self, fn: Gather) -> Encoded:
        """Apply `fn(tensor, batch_dim)` to every tensor (e.g. an all-gather across workers)."""
        return Encoded(
            final=fn(self.final, 0),
            layers=None if self.layers is None else fn(self.layers, 1),
            mask=None if self.mask is None else fn(self.mask, 0),
        )


@dataclass
class Scores:
    """final [B, N] and per-requested-layer [L, B, N] scores over the same candidates."""

    final: torch.Tensor
    layers: torch.Tensor

    def scaled(self, factor: float) -> Scores:
        return self if factor == 1.0 else Scores(self.final * factor, self.layers * factor)

    def own(self, per_query: int) -> Scores:
        """Each query's own block of `per_query` candidates out of an all-pairs [.., B, M]."""
        return Scores(own_candidates(self.final, per_query), own_candidates(self.layers, per_query))


class Retriever(nn.Module):
    """Base of every model kind (registered in `lead_ray/models/registry.py`).

    A kind sets `kind`, implements `scores`, `from_config` (build from a teacher config and a
    backbone, reading its head from the model folder) and `save` (write its weights), and keeps
    `tokenizer`, `max_query_length` and `max_doc_length`.
    """

    kind: ClassVar[str]
    all_pairs: ClassVar[bool] = True  # scores every query against every passage of a batch

    def __init__(self, tokenizer, *, max_query_length: int, max_doc_length: int):
        super().__init__()
        self.tokenizer = tokenizer  # each model tokenises its own text (liberal KD)
        self.max_query_length, self.max_doc_length = max_query_length, max_doc_length
        self.scale = 1.0  # `scores` multiplies by it: the softmax temperature of the similarity

    @property
    def num_layers(self) -> int:
        """Transformer blocks (layer indices 0 .. num_layers-1): the backbone's, by default."""
        return self.backbone.num_layers

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def scores(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        layers: Sequence[int] = (),
        *,
        own: bool = True,
        gather: Gather | None = None,
    ) -> Scores:
        """Final and per-layer scores of B queries against candidate passages.

        Args:
            queries: B query texts.
            passages: B*N passage texts, query-major: query b's own candidates are
                `passages[b*N : (b+1)*N]`.
            layers: block indices (0 = first block) whose scores to return.
            own: True -> each query against its own N candidates: final [B, N], layers [L, B, N].
                False (all-pairs kinds only) -> against every passage: final [B, M],
                layers [L, B, M], M = B*N, or every worker's passages when `gather` is given.
            gather: all-gathers passage tensors across workers (dim = the batch dim).

        Scores are multiplied by the model's `scale` (20 for a cosine dual encoder), which sets
        how peaked every softmax over them is; rankings do not depend on it.
        """
        raise NotImplementedError


def lengths(cfg) -> dict[str, int]:
    """The max lengths of an encoder config, as the model constructors take them."""
    return {"max_query_length": cfg.max_query_length, "max_doc_length": cfg.max_doc_length}


def save_with_head(backbone, head: nn.Module | None, folder: Path, name: str) -> None:
    """Save a backbone as a Hugging Face folder and a kind's extra weights (`head`: a projection,
    a classification layer) beside it as `name` (safetensors), when the model has them."""
    from safetensors.torch import save_file

    backbone.model.save_pretrained(folder, safe_serialization=True)
    if head is not None:
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / name))


def load_head(head: nn.Module | None, folder: str | None, name: str) -> None:
    """Load a kind's extra weights (`folder/name`) into `head` when the folder has them; a model
    built without a folder, or a folder without the file, keeps its initialisation."""
    from safetensors.torch import load_file

    if head is not None and folder is not None and (Path(folder) / name).is_file():
        head.load_state_dict(load_file(str(Path(folder) / name)))


class BiEncoder(Retriever):
    """A retriever that encodes queries and passages apart (`encode`), then scores the two
    (`score_encoded`): the all-pairs `scores` of dual encoders and ColBERT."""

    def encode(self, texts: Sequence[str], side: str, layers: Sequence[int] = ()) -> Encoded:
        raise NotImplementedError

    def score_encoded(self, q: Encoded, p: Encoded) -> Scores:
        """Every encoded query against every encoded passage: final [B, M], layers [L, B, M]."""
        raise NotImplementedError

    def encode_queries(self, texts: Sequence[str], layers: Sequence[int] = ()) -> Encoded:
        return self.encode(texts, "query", layers)

    def encode_passages(self, texts: Sequence[str], layers: Sequence[int] = ()) -> Encoded:
        return self.encode(texts, "passage", layers)

    def scores(self, queries, passages, layers=(), *, own=True, gather=None) -> Scores:
        q = self.encode_queries(list(queries), layers)  # queries first: the dropout RNG order
        p = self.encode_passages(list(passages), layers)
        if gather is not None:
            p = p.map(gather)
        out = self.score_encoded(q, p).scaled(self.scale)  # [.., B, M]
        return out.own(len(passages) // len(queries)) if own else out
