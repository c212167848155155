"""taskprune: task-aware structured pruning and feature distillation for multi-task vision models.

    >>> import taskprune
    >>> result = taskprune.prune(model, example_inputs, ratio=0.3)
    >>> print(result.report)

`taskprune.driving` (the reference driving model) and `taskprune.testing` (tiny models) are imported on demand.
"""

from ._version import __version__ as __version__

# the one verb, its result, and pruning in steps
from .api import PruneResult as PruneResult
from .api import prune as prune

# criteria
from .criteria import Criterion as Criterion
from .criteria import ScoringContext as ScoringContext
from .criteria import get_criterion as get_criterion
from .criteria import list_criteria as list_criteria
from .criteria import register_criterion as register_criterion

# recovering accuracy
from .distill import Distill as Distill
from .distill import FeatureDistiller as FeatureDistiller
from .export import export_onnx as export_onnx
from .iterative import prune_iteratively as prune_iteratively
from .report import PruneReport as PruneReport

# keeping the result
from .saving import load as load
from .saving import save as save

# tasks
from .tasks import MultiTaskAdapter as MultiTaskAdapter
from .tasks import Tasks as Tasks
from .train import FinetuneConfig as FinetuneConfig
from .train import finetune as finetune

__all__ = [
    "__version__",
    # pruning
    "prune", "prune_iteratively", "PruneResult", "PruneReport",
    # tasks
    "Tasks", "MultiTaskAdapter",
    # criteria
    "Criterion", "ScoringContext", "register_criterion", "get_criterion", "list_criteria",
    # recovery
    "Distill", "FeatureDistiller", "finetune", "FinetuneConfig",
    # saving
    "save", "load", "export_onnx",
]
