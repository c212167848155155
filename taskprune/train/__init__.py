"""Fine-tuning a pruned student: `finetune` (the loop), `TrainStep` (one step), `FinetuneConfig` (settings)."""

from .batchnorm import recompute_bn_stats as recompute_bn_stats
from .config import BN_MODES as BN_MODES
from .config import OPTIMIZERS as OPTIMIZERS
from .config import FinetuneConfig as FinetuneConfig
from .config import cosine_factor as cosine_factor
from .config import cosine_lr as cosine_lr
from .config import cosine_schedule as cosine_schedule
from .judge import validation_loss as validation_loss
from .loop import finetune as finetune
from .step import TrainStep as TrainStep

__all__ = ["BN_MODES", "OPTIMIZERS", "FinetuneConfig", "TrainStep", "cosine_factor", "cosine_lr", "cosine_schedule",
           "finetune", "recompute_bn_stats", "validation_loss"]
