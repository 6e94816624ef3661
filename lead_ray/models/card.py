"""The model card (`README.md`) of an exported student: what it is, what it was distilled from
and how, its numbers, and how to load it in sentence-transformers and in transformers.

Written by the train stage when the student is exported, and again by the report stage with the
evaluation numbers. The front matter is what the Hugging Face Hub reads.
"""

from __future__ import annotations

from pathlib import Path

from lead_ray.config import Config
from lead_ray.storage import atomic_write_text

CARD = """---
library_name: {library}
pipeline_tag: sentence-similarity
tags:
- lead-ray
- knowledge-distillation
- dense-retrieval
---

# A dense retriever distilled with LEAD

A dual-encoder student trained with lead-ray: LEAD (liberal feature-based distillation,
arXiv 2212.05225) aligns the student's score distributions over the same candidate passages with
the teacher's, at intermediate layers as well as at the end.

| | |
|---|---|
| student | {student}; {pooling} pooling, {similarity} similarity |
| teacher | {teacher_kind}: {teacher} ({teacher_mode}) |
| data | {data} (split `{split_train}`){examples} |
| LEAD | {pairs} layer pairs ({selection}, re-drawn every {resample} steps), temperature \
{temperature}, layer temperature {layer_temperature}, re-weighting {reweight}, weights {weights} |
| training | {steps} steps, batch {batch} x (1 + {negatives}){accum}, lr {lr}, {precision}, \
seed {seed} |
| lengths | query {max_query} tokens, passage {max_doc} tokens |
| prompts | query {query_prompt!r}, passage {passage_prompt!r} |
{results}
## Loading
{loading}"""

RESULTS = """
## Results on `{split}`

| {names} |
|{rule}
| {values} |
"""

SENTENCE_TRANSFORMERS = """
With sentence-transformers (similarity, pooling and prompts come with the model):

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("PATH")
q = model.encode_query(["a query"])
p = model.encode_document(["a passage"])
scores = model.similarity(q, p)  # {similarity}
```

With transformers:

```python
import torch
from transformers import AutoModel, AutoTokenizer
tok, enc = AutoTokenizer.from_pretrained("PATH"), AutoModel.from_pretrained("PATH")
batch = tok([{query_prompt!r} + "a query"], return_tensors="pt", padding=True)
out, m = enc(**batch), batch["attention_mask"].unsqueeze(-1)
vec = {pooled}{normalized}
```
"""

LEAD_RAY = """
Separate query and passage towers (`query/` holds the query tower), so this folder is
not a sentence-transformers model. Load it with lead-ray:

```python
from lead_ray.models.build import load_model
model = load_model("PATH")
q, p = model.embed(["a query"], "query"), model.embed(["a passage"], "passage")
```
"""

POOLED = {
    "cls": "out.last_hidden_state[:, 0]",
    "mean": "(out.last_hidden_state * m).sum(1) / m.sum(1)",
    "max": "out.last_hidden_state.masked_fill(m == 0, -1e4).max(1).values",
    "lasttoken": "out.last_hidden_state[0, m.sum() - 1][None]",
}


def model_card(
    cfg: Config, meta: dict, metrics: dict[str, float] | None = None, split: str | None = None
) -> str:
    """The card's markdown. `meta` is the student's `lead_model.json`."""
    lead, train = cfg.lead, cfg.train
    similarity = "cosine" if meta.get("normalize") else "dot"
    prompts = meta.get("prompts") or {}
    shared = meta.get("shared_towers", True)
    fields = {
        "similarity": similarity,
        "query_prompt": prompts.get("query", ""),
        "passage_prompt": prompts.get("passage", ""),
        "pooled": POOLED.get(meta.get("pooling"), "..."),
        "normalized": "\nvec = torch.nn.functional.normalize(vec, dim=-1)"
        if meta.get("normalize")
        else "",
    }
    results = ""
    if metrics:
        results = RESULTS.format(
            split=split,
            names=" | ".join(metrics),
            rule="---|" * len(metrics),
            values=" | ".join(f"{v:.4f}" for v in metrics.values()),
        )
    return CARD.format(
        library="sentence-transformers" if shared else "lead-ray",
        student=_source(cfg.student.model),
        pooling=meta.get("pooling"),
        teacher_kind=cfg.teacher.kind,
        teacher=_source(cfg.teacher.model),
        teacher_mode="trained jointly" if cfg.teacher.trainable else "frozen",
        data=cfg.data.beir or cfg.data.corpus or "synthetic",
        split_train=cfg.data.train_split,
        examples=f", examples {cfg.data.examples}" if cfg.data.examples else "",
        pairs=lead.layers,
        selection=lead.selection,
        resample=lead.resample_every,
        temperature=lead.temperature,
        layer_temperature=lead.layer_temperature,
        reweight="on" if lead.reweight else "off",
        weights=lead.weights.model_dump(),
        steps=train.steps,
        batch=train.batch_size,
        accum=f", {train.grad_accum} micro-batches per step" if train.grad_accum > 1 else "",
        negatives=train.negatives,
        lr=train.lr,
        precision=train.precision,
        seed=train.seed,
        max_query=meta.get("max_query_length"),
        max_doc=meta.get("max_doc_length"),
        results=results,
        loading=(SENTENCE_TRANSFORMERS if shared else LEAD_RAY).format(**fields),
        **fields,
    )


def _source(model) -> str:
    return model if isinstance(model, str) else model.model_dump_json(exclude_none=True)


def write_model_card(
    folder: Path, cfg: Config, metrics: dict[str, float] | None = None, split: str | None = None
) -> Path:
    """Write `folder/README.md` for the exported student in `folder` (atomically; left as it is
    when it already says the same)."""
    from lead_ray.models.formats import read_meta

    meta = read_meta(folder) or {}
    text, target = model_card(cfg, meta, metrics, split), folder / "README.md"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:  # a rerun: unchanged
        atomic_write_text(target, text)
    return target
