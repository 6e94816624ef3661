"""Typed, validated experiment configuration (`schema`) and how it is read (`load`)."""

from lead_ray.config.load import apply_override, load_config, save_resolved
from lead_ray.config.schema import (
    BuildSpec,
    ColBERTOptions,
    Config,
    ConfigError,
    DataConfig,
    DeepSpeedConfig,
    EncodeConfig,
    EncoderConfig,
    EvaluateConfig,
    IndexConfig,
    LeadConfig,
    LossWeights,
    MINILM_ALIASES,
    MineConfig,
    ModelSource,
    QrelsPaths,
    RayConfig,
    SearchConfig,
    Section,
    StudentConfig,
    SyntheticData,
    TeacherConfig,
    TrainConfig,
)

__all__ = [
    'BuildSpec', 'ColBERTOptions', 'Config', 'ConfigError', 'DataConfig', 'DeepSpeedConfig', 'EncodeConfig', 'EncoderConfig', 'EvaluateConfig', 'IndexConfig', 'LeadConfig', 'LossWeights', 'MINILM_ALIASES', 'MineConfig', 'ModelSource', 'QrelsPaths', 'RayConfig', 'SearchConfig', 'Section', 'StudentConfig', 'SyntheticData', 'TeacherConfig', 'TrainConfig', 'apply_override', 'load_config', 'save_resolved'
]
