"""Tokenisation shared by the encoders: each model tokenises its own text (liberal KD)."""

from __future__ import annotations

import torch


def tokenize(
    tokenizer, texts: list[str], max_length: int, pad_to_max: bool, device
) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask [B, T]; T = longest in batch, or max_length when `pad_to_max`
    (equal shapes on every worker, so token states can be gathered)."""
    batch = tokenizer(
        texts,
        padding="max_length" if pad_to_max else "longest",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return {
        "input_ids": batch["input_ids"].to(device),
        "attention_mask": batch["attention_mask"].to(device),
    }
