"""GPU encode benchmark: >= 500k passages through `CorpusEncoder` with a 6-layer random-init
student under bf16 autocast on one GPU; prints passages/s and the fraction of the bf16 FLOP
ceiling the forward passes reach.

Passages are tokenised once per call of `--call-rows` rows, sorted by length and encoded in
batches of `--batch-size` padded to their own longest row (what `lead encode` does). Useful FLOPs
per passage of T real tokens: 2 * P * T (P = non-embedding parameters) + 4 * layers * T^2 * H
(QK^T and AV); padding is not counted, and the padded share is printed apart. Data: a BEIR
`corpus.jsonl` replicated to `--passages` (`--data`), else generated passages of vocabulary words
(20-90 words, MS MARCO-like lengths), so the script runs on a bare GPU machine.

    python benchmarks/gpu_encode.py                               # CUDA, 500k passages, bf16
    python benchmarks/gpu_encode.py --cpu --passages 2000 --batch-size 64    # check it on CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lead_ray.config import BuildSpec, ModelSource, TeacherConfig
from lead_ray.corpus.encode import CorpusEncoder, split_passages
from lead_ray.models.build import build_teacher, save_model


def passages(n: int, data: Path | None, tokenizer, seed: int = 0) -> list[str]:
    if data is not None:
        rows = [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8")]
        texts = [f"{r['title']} {r['text']}" if r.get("title") else r["text"] for r in rows]
        return [texts[i % len(texts)] for i in range(n)]
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and w.islower() and len(w) > 2]
    rng = np.random.default_rng(seed)
    vocab = np.asarray(sorted(words))
    return [
        " ".join(vocab[rng.integers(0, len(vocab), int(k))]) for k in rng.integers(20, 91, size=n)
    ]


def student(folder: Path, args: argparse.Namespace) -> Path:
    spec = BuildSpec(
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        intermediate=args.intermediate,
        max_position=512,
        seed=0,
    )
    model = build_teacher(
        TeacherConfig(model=ModelSource(build=spec), pooling="cls", max_doc_length=args.max_length)
    )
    save_model(model, folder)
    return folder


def padded_tokens(lengths: np.ndarray, batch: int) -> int:
    ordered = np.sort(lengths)[::-1]
    return int(sum(ordered[i] * len(ordered[i : i + batch]) for i in range(0, len(ordered), batch)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passages", type=int, default=500_000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--call-rows", type=int, default=65_536)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 dense peak of the GPU")
    p.add_argument("--data", type=Path, default=None, help="a BEIR folder (corpus.jsonl)")
    p.add_argument("--cpu", action="store_true", help="run on CPU (a check of the script)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --cpu to check the script")
    device = "cpu" if args.cpu else "cuda"
    with tempfile.TemporaryDirectory(prefix="gpu-encode-") as tmp:
        enc = CorpusEncoder(
            str(student(Path(tmp) / "student", args)),
            max_length=args.max_length,
            batch_size=args.batch_size,
            device=device,
            precision="bf16",
        )
    texts = passages(args.passages, args.data, enc.model.tokenizer)
    backbone = enc.backbone.model
    params = sum(p.numel() for p in backbone.parameters())
    body = sum(p.numel() for n, p in backbone.named_parameters() if not n.startswith("embeddings."))
    enc.embed_tokens(
        split_passages(enc.model.tokenizer, texts[: args.batch_size], args.max_length)[0]
    )
    tok_s = gpu_s = 0.0
    real = padded = flops = 0
    t_all = time.perf_counter()
    for start in range(0, len(texts), args.call_rows):
        t = time.perf_counter()
        seqs, _, _ = split_passages(
            enc.model.tokenizer, texts[start : start + args.call_rows], args.max_length
        )
        t2 = time.perf_counter()
        enc.embed_tokens(seqs)  # ends with one device -> host copy: synchronised
        if device == "cuda":
            torch.cuda.synchronize()
        gpu_s += time.perf_counter() - t2
        tok_s += t2 - t
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        real += int(lengths.sum())
        padded += padded_tokens(lengths, args.batch_size)
        flops += 2 * body * int(lengths.sum()) + 4 * args.layers * args.hidden * int(
            (lengths**2).sum()
        )
    total = time.perf_counter() - t_all
    peak = args.peak_tflops * 1e12
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "passages": len(texts),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "layers": args.layers,
        "hidden": args.hidden,
        "params": params,
        "body_params": body,
        "mean_tokens": real / len(texts),
        "padding_share": 1 - real / padded,
        "seconds": total,
        "tokenize_s": tok_s,
        "forward_s": gpu_s,
        "passages_per_s": len(texts) / total,
        "forward_passages_per_s": len(texts) / gpu_s,
        "tflops_forward": flops / gpu_s / 1e12,
        "mfu_forward": flops / gpu_s / peak,
        "mfu_end_to_end": flops / total / peak,
        "peak_tflops": args.peak_tflops,
    }
    print(
        f"{result['device']}: {len(texts):,} passages ({result['mean_tokens']:.0f} tokens on "
        f"average, {result['padding_share']:.1%} padding), {args.layers}-layer h{args.hidden} "
        f"student, bf16 autocast, batch {args.batch_size}"
    )
    print(
        f"  end to end: {result['passages_per_s']:,.0f} passages/s ({total:.1f} s; tokenising "
        f"{tok_s:.1f} s, forward {gpu_s:.1f} s)"
    )
    print(
        f"  forward:    {result['forward_passages_per_s']:,.0f} passages/s, "
        f"{result['tflops_forward']:.1f} TFLOP/s = {result['mfu_forward']:.1%} of the "
        f"{args.peak_tflops:g} TFLOP/s bf16 ceiling (end to end {result['mfu_end_to_end']:.1%})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
