"""Head-agnostic feature distillation from the unpruned teacher: `Distill` (the config), `FeatureDistiller` (the
loss, hooked into both models), `auto_layers` (the shared trunk's outputs) and the losses (`losses`)."""

from .config import ALIGNMENTS as ALIGNMENTS
from .config import Distill as Distill
from .distiller import FeatureDistiller as FeatureDistiller
from .distiller import auto_layers as auto_layers
from .losses import FEATURE_LOSSES as FEATURE_LOSSES
from .losses import feature_loss as feature_loss

__all__ = ["ALIGNMENTS", "FEATURE_LOSSES", "Distill", "FeatureDistiller", "auto_layers", "feature_loss"]
