"""Cross-encoder: query and passage read together; a head on the pair's token states gives one
logit, the score.

As in the LEAD code, the model's own head scores every block, which gives the layer scores;
candidates are each query's own 1+n passages. Two kinds of head:

- a published checkpoint (a transformers `*ForSequenceClassification` folder, or a
  sentence-transformers `CrossEncoder` folder, which is one) keeps its architecture's head:
  BERT's pooler (dense + tanh on [CLS]) then its classifier; RoBERTa / XLM-R / ELECTRA's
  classification head over the sequence; DistilBERT's pre-classifier; DeBERTa's context pooler.
  Its activation (sigmoid for most rerankers) is kept for export, not applied: scores are logits;
- the LEAD code's head, a linear layer on [CLS] (`lead_head.safetensors`), for a cross-encoder
  started from a plain encoder (`teacher.new_head: true`) or built in code.

The pair is `[CLS] query [SEP] passage [SEP]` (with token type ids where the model has them),
truncated to max_query_length + max_doc_length tokens, capped by the position embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from lead_ray.config import ConfigError, TeacherConfig
from lead_ray.models.backbone import Backbone
from lead_ray.models.base import Retriever, Scores, lengths, load_head, save_with_head
from lead_ray.models.formats import ST_CONFIG, detect_kind

HEAD = "lead_head.safetensors"
_STYLES = {
    "pooler": "classifier on the base model's pooler (BERT family)",
    "sequence": "classification head over the sequence (RoBERTa, XLM-R, ELECTRA)",
    "pre_classifier": "pre-classifier + ReLU + classifier on [CLS] (DistilBERT)",
    "context_pooler": "context pooler + classifier (DeBERTa)",
}


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
        seqcls: nn.Module | None = None,
        activation: str | None = None,
    ):
        super().__init__(
            tokenizer, max_query_length=max_query_length, max_doc_length=max_doc_length
        )
        self.backbone = backbone
        self.activation = activation  # sentence-transformers' activation_fn, kept for export
        if seqcls is None:  # the LEAD code's head: a linear layer on [CLS]
            self.style = "lead"
            self.head = nn.ModuleDict({"linear": nn.Linear(backbone.hidden_size, 1)})
            self._seqcls: list[nn.Module] = []
        else:
            names = [
                n
                for n, _ in seqcls.named_children()
                if n not in (seqcls.base_model_prefix, "dropout")
            ]
            self.head = nn.ModuleDict({n: getattr(seqcls, n) for n in names})
            self.style = (
                "pre_classifier"
                if "pre_classifier" in names
                else "context_pooler"
                if "pooler" in names
                else "pooler"
                if getattr(backbone.model, "pooler", None) is not None
                else "sequence"
            )
            # the transformers model around backbone and head (shared modules), for saving;
            # in a list so that it is not registered a second time
            self._seqcls = [seqcls]

    @classmethod
    def from_config(
        cls, cfg: TeacherConfig, backbone: Backbone, tokenizer, folder: str | None
    ) -> CrossEncoder:
        """A published checkpoint with its own head; else the LEAD head, loaded from the folder
        (`lead_head.safetensors`), or new when the folder has none and `new_head` says so."""
        if (
            folder is not None
            and detect_kind(folder)[0] == "cross_encoder"
            and not (Path(folder) / HEAD).is_file()
        ):
            seqcls, activation = load_sequence_classifier(folder)
            return cls(
                Backbone(seqcls.base_model),
                tokenizer,
                seqcls=seqcls,
                activation=activation,
                **lengths(cfg),
            )
        if folder is not None and not (Path(folder) / HEAD).is_file() and not cfg.new_head:
            raise ConfigError(
                f"teacher.model {folder}: no cross-encoder head (no classifier "
                f"weights, no {HEAD}); set teacher.new_head: true to start one at "
                "random on this encoder"
            )
        model = cls(backbone, tokenizer, **lengths(cfg))
        load_head(model.head["linear"], folder, HEAD)
        return model

    def save(self, folder: Path) -> dict:
        if self.style == "lead":
            save_with_head(self.backbone, self.head["linear"], folder, HEAD)
            return {}
        self._seqcls[0].save_pretrained(folder, safe_serialization=True)
        st = {"model_type": "CrossEncoder", "prompts": {}, "default_prompt_name": None}
        if self.activation:
            st["activation_fn"] = self.activation
        (folder / ST_CONFIG).write_text(json.dumps(st, indent=2), encoding="utf-8")
        return {"head": self.style}

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
        keys = ["input_ids", "attention_mask"]
        if self.style != "lead" and "token_type_ids" in batch:  # as the published model reads
            keys.append("token_type_ids")
        return {k: batch[k].to(self.device) for k in keys}

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The head on one block's token states: [P, T, H] -> [P]."""
        h = self.head
        if self.style == "lead":
            return h["linear"](states[:, 0])[:, 0]
        if self.style == "sequence":
            return h["classifier"](states)[:, 0]
        if self.style == "pre_classifier":
            pooled = torch.relu(h["pre_classifier"](states[:, 0]))
        elif self.style == "context_pooler":
            pooled = h["pooler"](states)
        else:
            pooled = self.backbone.model.pooler(states)
        return h["classifier"](pooled)[:, 0]

    def scores(self, queries, passages, layers=(), *, own=True, gather=None) -> Scores:
        """B queries, each with its own N = len(passages) / B passages (query-major order).

        -> final [B, N], layers [L, B, N]
        """
        if not own or gather is not None:
            raise ValueError("a cross-encoder scores only each query's own candidates")
        queries, passages = list(queries), list(passages)
        b = len(queries)
        n = len(passages) // b
        tok = self.tokenize_pairs([q for q in queries for _ in range(n)], passages)
        states = self.backbone(**tok)  # n_layers x [B*N, T, H]
        final = self.logits(states[-1]).view(b, n)  # [B, N]
        if layers:
            layer_scores = torch.stack([self.logits(states[i]) for i in layers]).view(
                len(layers), b, n
            )
        else:
            layer_scores = final.new_zeros((0, b, n))
        return Scores(final=final, layers=layer_scores).scaled(self.scale)


def load_sequence_classifier(folder: str) -> tuple[nn.Module, str | None]:
    """A transformers sequence-classification checkpoint with one logit, its head loaded
    (ConfigError naming the tensors when it is missing or the checkpoint has unexpected ones),
    and the activation a sentence-transformers CrossEncoder folder declares."""
    from transformers import AutoModelForSequenceClassification

    from lead_ray.models.backbone import quiet_transformers

    quiet_transformers()
    model, info = AutoModelForSequenceClassification.from_pretrained(
        folder, output_loading_info=True
    )
    if model.config.num_labels != 1:
        raise ConfigError(
            f"{folder}: a cross-encoder with {model.config.num_labels} labels; "
            "lead-ray scores with one logit per pair"
        )
    prefix = model.base_model_prefix + "."
    missing = sorted(info.get("missing_keys", []))
    unexpected = sorted(
        k
        for k in info.get("unexpected_keys", [])
        if not k.startswith(prefix) and "position_ids" not in k
    )
    if missing or unexpected:
        raise ConfigError(
            f"{folder}: the cross-encoder head does not match its checkpoint "
            f"(missing {missing or 'none'}; unexpected {unexpected or 'none'})"
        )
    if model.config.model_type not in (
        "bert",
        "roberta",
        "xlm-roberta",
        "electra",
        "camembert",
        "distilbert",
        "deberta-v2",
        "ernie",
    ):
        raise ConfigError(
            f"{folder}: a {model.config.model_type} cross-encoder; lead-ray knows "
            f"the heads of {', '.join(_STYLES.values())}"
        )
    st = Path(folder) / ST_CONFIG
    activation = (
        json.loads(st.read_text(encoding="utf-8")).get("activation_fn") if st.is_file() else None
    )
    return model, activation
