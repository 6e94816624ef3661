"""What the encoders hand to scoring and the loss: plain tensors in two small records."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Encoded:
    """One side (queries or passages) encoded by a retriever.

    final:  dual encoder [B, D]; ColBERT [B, T, D] (token vectors)
    layers: the requested blocks, dual encoder [L, B, H]; ColBERT [L, B, T, H]; None if none asked
    mask:   ColBERT token mask [B, T] (1 = scored position); None for a dual encoder
    """

    final: torch.Tensor
    layers: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def map(self, fn) -> Encoded:
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
