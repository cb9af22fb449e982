"""Feature pipeline (scikit-learn transformers) shared by training, serving and batch,
and the training reference statistics used for warnings and drift."""

from features.pipeline import ContractFeatures, LinearDesign

__all__ = ["ContractFeatures", "LinearDesign"]
