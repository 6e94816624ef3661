"""Retrieval models that expose per-layer scores: DualEncoder, ColBERT, CrossEncoder."""

from lead_ray.modeling.build import Model, build_student, build_teacher, load_model, save_model
from lead_ray.modeling.colbert import ColBERT
from lead_ray.modeling.cross_encoder import CrossEncoder
from lead_ray.modeling.dual_encoder import DualEncoder
from lead_ray.modeling.outputs import Encoded, Scores

__all__ = [
    "ColBERT", "CrossEncoder", "DualEncoder", "Encoded", "Model", "Scores",
    "build_student", "build_teacher", "load_model", "save_model",
]
