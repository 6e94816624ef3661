"""What a model folder declares about itself, read from the files its library wrote.

- lead-ray folders: `lead_model.json` (kind, pooling, normalisation, scale, prompts, ...).
- sentence-transformers bi-encoders: `modules.json` (Transformer, Pooling, Dense, Normalize),
  `1_Pooling/config.json`, `N_Dense/{config.json,model.safetensors}`,
  `config_sentence_transformers.json` (prompts, similarity_fn_name).
- cross-encoders: a transformers `*ForSequenceClassification` checkpoint, or a
  sentence-transformers `CrossEncoder` folder (`model_type: CrossEncoder`, its activation).
- ColBERT: the colbert-ai layout (`artifact.metadata`: lengths, dim, markers; `linear.weight`
  beside the BERT weights) and the PyLate layout (a sentence-transformers folder with a Dense
  projection and `query_prefix` / `document_prefix` in its config).

Only safetensors are read: a folder whose weights are pickles is refused, naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lead_ray.config import ConfigError

META = "lead_model.json"
ST_CONFIG = "config_sentence_transformers.json"
COLBERT_AI = "artifact.metadata"
# activation functions a Dense module may name (never imported from the string itself)
ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
}
_POOLING = {"cls": "cls", "mean": "mean", "max": "max", "lasttoken": "lasttoken"}
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not readable JSON ({err})") from None


def read_meta(folder: str | Path) -> dict | None:
    """The `lead_model.json` of a folder lead-ray wrote, else None."""
    path = Path(folder) / META
    return _json(path) if path.is_file() else None


@dataclass
class Dense:
    """A sentence-transformers Dense module: Linear(in, out[, bias]) then an activation."""

    folder: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str  # a key of ACTIVATIONS' values


@dataclass
class SentenceTransformersSpec:
    """What a sentence-transformers folder (bi-encoder or PyLate) declares."""

    pooling: str | None = None  # None: no Pooling module (token vectors, PyLate)
    normalize: bool = False
    dense: list[Dense] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)  # "query" / "passage" -> prefix
    similarity: str | None = None  # similarity_fn_name
    config: dict[str, Any] = field(default_factory=dict)  # config_sentence_transformers.json


def read_sentence_transformers(folder: str | Path) -> SentenceTransformersSpec | None:
    """The modules and settings of a sentence-transformers folder (None if it is not one).

    Raises:
        ConfigError: a module lead-ray cannot reproduce exactly, naming it.
    """
    root = Path(folder)
    if not (root / "modules.json").is_file():
        return None
    st_config = _json(root / ST_CONFIG) if (root / ST_CONFIG).is_file() else {}
    spec = SentenceTransformersSpec(
        config=st_config, similarity=st_config.get("similarity_fn_name")
    )
    spec.prompts = side_prompts(st_config.get("prompts") or {})
    for entry in _json(root / "modules.json"):
        kind = entry.get("type", "").rsplit(".", 1)[-1]
        path = root / entry.get("path", "")
        if kind == "Transformer":
            continue
        if kind == "Pooling":
            spec.pooling = _pooling(path / "config.json")
        elif kind == "Dense":
            spec.dense.append(_dense(path))
        elif kind == "Normalize":
            spec.normalize = True
        else:
            raise ConfigError(
                f"{root / 'modules.json'}: module {entry.get('type')!r} is not one "
                "lead-ray reproduces (Transformer, Pooling, Dense, Normalize)"
            )
    return spec


def side_prompts(prompts: dict[str, str]) -> dict[str, str]:
    """sentence-transformers prompt names -> lead-ray's sides: "query", and "passage" from
    "document", "passage" or "corpus" (the first present)."""
    out = {"query": prompts["query"]} if "query" in prompts else {}
    for name in ("document", "passage", "corpus"):
        if name in prompts:
            out["passage"] = prompts[name]
            break
    return out


def _pooling(path: Path) -> str:
    cfg = _json(path)
    modes = cfg.get("pooling_mode") or [m for k, m in _LEGACY_POOLING.items() if cfg.get(k)]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1 or modes[0] not in _POOLING:
        raise ConfigError(
            f"{path}: pooling {modes} is not one lead-ray reproduces ({', '.join(_POOLING)})"
        )
    if cfg.get("include_prompt") is False:
        raise ConfigError(
            f"{path}: include_prompt: false (prompt tokens left out of the pooling) "
            "is not supported"
        )
    return _POOLING[modes[0]]


def _dense(folder: Path) -> Dense:
    cfg = _json(folder / "config.json")
    if not (folder / "model.safetensors").is_file():
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise ConfigError(
            f"{folder}: a Dense module without model.safetensors (found {found}); "
            "lead-ray reads safetensors only, never pickled weights"
        )
    act = cfg.get("activation_function", "torch.nn.modules.activation.Tanh")
    if act not in ACTIVATIONS:
        raise ConfigError(
            f"{folder / 'config.json'}: activation {act!r} is not one of {sorted(ACTIVATIONS)}"
        )
    return Dense(
        folder,
        int(cfg["in_features"]),
        int(cfg["out_features"]),
        bool(cfg.get("bias", True)),
        ACTIVATIONS[act],
    )


def detect_kind(folder: str | Path) -> tuple[str | None, str]:
    """The model kind a folder's files declare, and why (None: a plain encoder, any kind)."""
    root = Path(folder)
    if (meta := read_meta(root)) is not None:
        return meta.get("kind", "dual_encoder"), f"{META} says so"
    if (root / COLBERT_AI).is_file():
        return "colbert", f"a colbert-ai checkpoint ({COLBERT_AI})"
    st = _json(root / ST_CONFIG) if (root / ST_CONFIG).is_file() else {}
    if st.get("model_type") == "CrossEncoder":
        return "cross_encoder", "a sentence-transformers CrossEncoder"
    if "query_prefix" in st or "document_prefix" in st:
        return "colbert", "a PyLate ColBERT"
    arch = (
        (_json(root / "config.json").get("architectures") or [""])[0]
        if (root / "config.json").is_file()
        else ""
    )
    if arch.endswith("ForSequenceClassification"):
        return "cross_encoder", f"a {arch} checkpoint"
    if arch == "HF_ColBERT":
        return "colbert", "a colbert-ai checkpoint (HF_ColBERT)"
    if (root / "modules.json").is_file():
        return "dual_encoder", "a sentence-transformers model"
    return None, "a plain encoder"


def check_kind(folder: str | Path, kind: str, where: str) -> None:
    """ConfigError when the folder is a checkpoint of another kind than the config says."""
    found, why = detect_kind(folder)
    if found is not None and found != kind:
        raise ConfigError(
            f"{where}: {folder} is {why}, a {found} model; set kind: {found} "
            f"(the config says {kind})"
        )


def check_safetensors(folder: str | Path) -> None:
    """Refuse a folder whose weights exist only as pickles (pytorch_model.bin, *.pt)."""
    root = Path(folder)
    if any(root.glob("*.safetensors")) or not (root / "config.json").is_file():
        return
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise ConfigError(
            f"{root}: weights only as pickles ({', '.join(pickles)}); lead-ray loads "
            "safetensors only (convert them with transformers' save_pretrained)"
        )
