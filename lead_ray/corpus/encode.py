"""Corpus encoding: `CorpusEncoder`, a plain callable class, and the single-process loop.

`CorpusEncoder` turns a batch of corpus rows (doc_idx, doc_id, title, text) into embedding rows
(doc_idx, doc_id, emb): texts are tokenised once, sorted by token length, encoded in sub-batches
padded only to their own longest row, and put back in input order. The same class is the Ray
Data UDF in `lead_ray/distributed/encode.py`. `encode_corpus` runs it here over the corpus store
in shards of `encode.shard_rows` rows (shard s = rows s*R ... (s+1)*R-1), skipping shards the
manifest lists as complete (row count + checksum) for the same model, corpus and settings,
and writing each shard atomically as soon as it is whole (`lead_ray/encoding_shards.py`, shared
with the Ray driver). Only dual encoders give one vector per passage.

MaxP (`encode.doc_mode: maxp`): a document is split into windows of `max_length` tokens that
overlap by `maxp_stride` tokens, at most `maxp_passages` of them; window p of store row r gets
the FAISS id `IdMap.vector_ids(r, p)` (lead_ray/corpus/ids.py) and keeps the document's doc_id,
so ids stay unique and search scores a document by its best window (manifest: `maxp: true`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lead_ray.config import Config, ConfigError, EncodeConfig
from lead_ray.corpus.ids import IdMap
from lead_ray.corpus.shard_writer import EncodePlan, ShardWriter, plan_encoding, store_rows
from lead_ray.data.corpus import passage_texts
from lead_ray.models.build import load_model, read_meta
from lead_ray.models.dual_encoder import DualEncoder

CALL_BATCHES = 16  # sub-batches per CorpusEncoder call: length-sorting works within one call


def check_dual_encoder(model_path: str | os.PathLike) -> None:
    """Refuse, before anything is written, a model folder that is not a dual encoder."""
    kind = (read_meta(str(model_path)) or {}).get("kind")
    if kind not in (None, "dual_encoder"):
        raise ConfigError(_not_dual(model_path, kind))


def _not_dual(model_path: str | os.PathLike, kind: str) -> str:
    return (
        f"{model_path}: a {kind} model gives no single vector per passage, so it cannot "
        "encode a corpus for a FAISS index; encode with the student or a dual_encoder teacher"
    )


def load_dual_encoder(model_path: str | os.PathLike) -> DualEncoder:
    """Load a saved model folder (or the MiniLM alias) that must be a dual encoder."""
    model = load_model(str(model_path))
    if not isinstance(model, DualEncoder):
        raise ConfigError(_not_dual(model_path, model.kind))
    return model.eval()


def split_passages(
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    *,
    maxp: bool = False,
    stride: int = 0,
    max_passages: int = 1,
) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Token ids of every passage to encode, the input row each came from, and its number there.

    FirstP: one passage per text, truncated to `max_length` tokens. MaxP: windows of `max_length`
    tokens (special tokens included) overlapping by `stride` tokens, the first `max_passages`.
    Long texts are first cut to `CHARS_PER_TOKEN` characters per token that can be kept (at a
    space), and tokenised whole only when the cut part proves too short: the result is the
    tokenizer's own, without tokenising the rest of a long document (MS MARCO documents average
    ~7,000 characters; four 64-token windows need about 1,200).

    Returns:
        ids: P lists of token ids; owner: [P] int64 input row; passage: [P] int64 window number.
    """
    texts = list(texts)
    room = max_length - tokenizer.num_special_tokens_to_add()
    if maxp and not 0 <= stride < room:
        raise ConfigError(
            f"encode.maxp_stride={stride}: must be below max_length minus special tokens ({room})"
        )
    # tokens of a text that can reach a kept passage: the first window, then the rest of each
    needed = room + (max_passages - 1) * (room - stride) if maxp else room
    cut, was_cut = cut_texts(texts, needed * CHARS_PER_TOKEN)
    ids, owner, passage = _windows(tokenizer, cut, max_length, maxp, stride, max_passages)
    if not was_cut.any():  # short texts (passages): nothing to check
        return ids, owner, passage
    # a cut text whose last kept passage is not full may have lost tokens: tokenise it whole
    full = np.zeros(len(texts), dtype=bool)
    last = passage == (max_passages - 1 if maxp else 0)
    full[owner[last]] = np.fromiter((len(ids[i]) == max_length for i in np.flatnonzero(last)),
                                    dtype=bool, count=int(last.sum()))  # fmt: skip
    redo = np.flatnonzero(was_cut & ~full)
    if len(redo):
        again = _windows(tokenizer, [texts[i] for i in redo], max_length, maxp, stride,
                         max_passages)  # fmt: skip
        keep = ~np.isin(owner, redo)
        ids = [x for x, k in zip(ids, keep, strict=True) if k] + again[0]
        owner = np.concatenate([owner[keep], redo[again[1]]])
        passage = np.concatenate([passage[keep], again[2]])
        order = np.lexsort((passage, owner))  # back to text order, windows in order
        ids, owner, passage = [ids[i] for i in order], owner[order], passage[order]
    return ids, owner, passage


CHARS_PER_TOKEN = 12  # generous: English WordPiece averages ~4.5 characters per token


def cut_texts(texts: Sequence[str], chars: int) -> tuple[list[str], np.ndarray]:
    """Each text cut at the last space before `chars` characters (texts without one stay
    whole), so that a long document is not tokenised beyond what can be kept; whole words
    only, so the tokens of the part kept are those of the whole text. -> texts, [n] bool cut?

    >>> cut_texts(["a bb ccc dddd", "short"], 8)
    (['a bb ccc', 'short'], array([ True, False]))
    """
    out, was_cut = [], np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        space = t.rfind(" ", 0, chars + 1) if len(t) > chars else -1
        if space > 0:
            out.append(t[:space])
            was_cut[i] = True
        else:
            out.append(t)
    return out, was_cut


def _windows(tokenizer, texts: list[str], max_length: int, maxp: bool, stride: int, keep: int):
    """The tokenizer's own truncation (FirstP) or overflowing windows (MaxP, the first `keep`
    of each text): ids, owner [P], passage [P] as `split_passages` returns them."""
    if not maxp:
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        return ids, np.arange(len(texts), dtype=np.int64), np.zeros(len(texts), np.int64)
    enc = tokenizer(
        texts, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True
    )
    owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)  # [W]
    first = np.r_[True, owner[1:] != owner[:-1]]  # windows of a text are contiguous
    starts = np.flatnonzero(first)
    passage = np.arange(len(owner)) - np.repeat(starts, np.diff(np.r_[starts, len(owner)]))
    kept = np.flatnonzero(passage < keep)
    return [enc["input_ids"][i] for i in kept], owner[kept], passage[kept]


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids / attention_mask [B, T], T = the longest sequence of this sub-batch."""
    width = max(map(len, seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class CorpusEncoder:
    """Corpus rows -> embedding rows with one dual encoder (the Ray Data UDF, also used locally).

    Args:
        model_path: a saved dual-encoder folder (student or teacher) or the MiniLM alias.
        max_length: passage tokens (default: the model's `max_doc_length`).
        batch_size: passages per forward pass.
        dtype: "float32" or "float16" output vectors (computed in float32 or under `autocast`).
        device: torch device (default: cuda when available).
        title: encode `title text` (the training format, `passage_text`) instead of `text`.
        doc_mode / maxp_stride / maxp_passages: FirstP truncation or MaxP windows (module doc).
        threads: torch intra-op threads for this process (None: leave torch's setting).
        precision: "fp32", or "bf16" / "fp16" to run the forward under torch.autocast (a
            device that cannot is one clear error, before anything is encoded).
    """

    def __init__(
        self,
        model_path: str,
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        dtype: str = "float32",
        device: str | None = None,
        title: bool = True,
        doc_mode: str = "firstp",
        maxp_stride: int = 0,
        maxp_passages: int = 4,
        threads: int | None = None,
        precision: str = "fp32",
    ):
        if threads:
            torch.set_num_threads(threads)
        if dtype not in ("float32", "float16"):
            raise ConfigError(f"encode.dtype={dtype!r}: use float32 or float16")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_dual_encoder(model_path).to(self.device)
        self.backbone = self.model.passage_backbone or self.model.query_backbone
        self.max_length = max_length or self.model.max_doc_length
        if self.max_length > self.backbone.max_positions:
            raise ConfigError(
                f"encode.max_length={self.max_length}: the model has only "
                f"{self.backbone.max_positions} positions"
            )
        self.batch_size, self.title, self.dtype = batch_size, title, np.dtype(dtype)
        self.maxp, self.stride = doc_mode == "maxp", maxp_stride
        self.passages = maxp_passages if self.maxp else 1
        self.autocast = autocast_dtype(precision, self.device)
        self.pad_id = self.model.tokenizer.pad_token_id or 0
        self.dim = self.model.dim
        prompt = self.model.prompts.get("passage", "")
        # MaxP puts the passage prompt in every window (right after [CLS]), FirstP before the text
        self.prompt_ids = (
            self.model.tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        )

    @classmethod
    def from_config(
        cls,
        cfg: EncodeConfig,
        model_path: str,
        *,
        title: bool = True,
        threads: int | None = None,
        device: str | None = None,
    ) -> CorpusEncoder:
        return cls(
            model_path,
            max_length=cfg.max_length,
            batch_size=cfg.batch_size,
            dtype=cfg.dtype,
            device=device or cfg.device,
            title=title,
            doc_mode=cfg.doc_mode,
            maxp_stride=cfg.maxp_stride,
            maxp_passages=cfg.maxp_passages,
            threads=threads or cfg.threads,
            precision=cfg.precision,
        )

    def texts(self, batch: dict[str, np.ndarray]) -> list[str]:
        return passage_texts(
            batch.get("title", batch["text"]), batch["text"], title=self.title and "title" in batch
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{doc_idx [n], doc_id [n], title [n], text [n]} -> {doc_idx [m], doc_id [m], emb [m, D]}.

        FirstP: m = n, rows in input order. MaxP: m >= n, each document's windows in order, and
        two more columns: `passage` (window number) and `passages` (windows of its document).
        """
        texts = (
            self.texts(batch) if self.maxp else self.model.with_prompt(self.texts(batch), "passage")
        )
        room = self.max_length - len(self.prompt_ids) if self.maxp else self.max_length
        seqs, owner, passage = split_passages(
            self.model.tokenizer,
            texts,
            room,
            maxp=self.maxp,
            stride=self.stride,
            max_passages=self.passages,
        )
        if self.maxp and self.prompt_ids:
            seqs = [s[:1] + self.prompt_ids + s[1:] for s in seqs]
        rows = np.asarray(batch["doc_idx"], dtype=np.int64)[owner]  # [m] store rows
        out = {
            "doc_idx": IdMap(None, self.passages).vector_ids(rows, passage),
            "doc_id": np.asarray(batch["doc_id"], dtype=object)[owner],
            "emb": self.embed_tokens(seqs),
        }
        if self.maxp:
            out["passage"] = passage
            out["passages"] = np.bincount(owner, minlength=len(batch["doc_idx"]))[owner]
        return out

    @torch.inference_mode()
    def embed_tokens(self, seqs: list[list[int]]) -> np.ndarray:
        """[n, D] vectors of tokenised passages, longest first in sub-batches, in input order."""
        out = torch.empty((len(seqs), self.dim), device=self.device)  # [n, D], on the device
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        order = np.argsort(-lengths, kind="stable")  # longest first: an OOM shows up at once
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = _pad([seqs[i] for i in rows], self.pad_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            ctx = (
                torch.autocast(self.device.type, dtype=self.autocast)
                if self.autocast
                else contextlib.nullcontext()
            )
            with ctx:
                states = self.backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
            vec = self.model.head(states.float(), mask)  # [b, D]: pooling, Dense, Normalize
            out[torch.from_numpy(rows).to(self.device)] = vec
        # one copy back per call: on a GPU the next sub-batch is padded while this one runs
        return out.cpu().numpy().astype(self.dtype, copy=False)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None for fp32); ConfigError, before any
    work, when the device cannot compute in it."""
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, "bad")
    if dtype == "bad":
        raise ConfigError(f"encode.precision={precision!r}: one of fp32, bf16, fp16")
    if dtype is None:
        return None
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"encode.precision=bf16: {torch.cuda.get_device_name(device)} has no "
            "bf16 (Ampere or newer); use fp16"
        )
    try:
        with torch.autocast(device.type, dtype=dtype):
            torch.nn.functional.linear(
                torch.ones(2, 2, device=device), torch.ones(2, 2, device=device)
            )
    except (RuntimeError, ValueError) as err:
        raise ConfigError(
            f"encode.precision={precision}: {device.type} cannot compute in it "
            f"({str(err).splitlines()[0]}); use fp32"
        ) from None
    return dtype


def encode_queries(model: DualEncoder, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[Q, D] float32 query vectors (search, mining) in input order; longest texts batched
    together."""
    if not isinstance(model, DualEncoder):
        raise ConfigError(f"a {model.kind} model gives no single query vector")
    texts = list(texts)
    out = np.zeros((len(texts), model.query_backbone.hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = model.embed([texts[i] for i in rows], "query").float().cpu().numpy()
    return out


# ----------------------------------------------------------------------------- local loop


def encode_corpus(
    cfg: Config,
    model_folder: str | os.PathLike,
    store,
    out_folder: str | os.PathLike,
    progress: bool = True,
    on_shard: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Encode the corpus store into embedding shards in this process; returns the manifest
    (its `last_run` says which shards this call encoded).

    A rerun on the same folder encodes only the shards the manifest does not list as complete
    (with matching row count and checksum) for the same model, corpus and settings.

    Args:
        store: the `CorpusStore` (global doc_idx = its row number).
        on_shard: called as `on_shard(shard, entry)` after each shard and its manifest update.
    """
    check_dual_encoder(model_folder)
    plan = plan_encoding(cfg, str(model_folder), store, out_folder)
    if plan.manifest is not None:
        return plan.nothing_to_do("local")
    writer = ShardWriter(plan, on_shard=on_shard)
    docs, seconds = 0, 0.0
    if plan.todo:
        encoder = CorpusEncoder.from_config(cfg.encode, str(model_folder), title=cfg.data.title)
        docs, seconds = _encode_shards(encoder, store, plan, writer, progress)
    return writer.finish(
        backend="local",
        seconds=round(seconds, 3),
        docs=docs,
        docs_per_s=round(docs / seconds, 2) if docs else None,
    )


def _encode_shards(
    encoder: CorpusEncoder, store, plan: EncodePlan, writer: ShardWriter, progress: bool
) -> tuple[int, float]:
    """The unfinished shards, one encoder call of `batch_size * CALL_BATCHES` rows at a time."""
    from lead_ray.progress import bar

    call_rows = encoder.batch_size * CALL_BATCHES
    total = sum(plan.shard_size(s) for s in plan.todo)
    t0, done = time.perf_counter(), 0
    with bar("encode", total, progress) as pbar:
        task = pbar.add_task("encode", total=total, rate="", info=f"{len(plan.todo)} shards")
        for shard in plan.todo:
            lo, hi = plan.bounds(shard)
            for start in range(lo, hi, call_rows):
                stop = min(start + call_rows, hi)
                writer.add(encoder(store_rows(store, start, stop)))
                done += stop - start
                rate = done / max(time.perf_counter() - t0, 1e-9)
                pbar.update(task, completed=done, rate=f"{rate:,.0f} docs/s")
    return done, time.perf_counter() - t0
