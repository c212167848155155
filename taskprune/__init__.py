"""taskprune: task-aware structured pruning and feature distillation for multi-task vision models.

    >>> import taskprune
    >>> result = taskprune.prune(model, example_inputs, ratio=0.3)
    >>> print(result.report)
"""

from ._version import __version__ as __version__

# the one verb and its result
from .api import PruneResult as PruneResult
from .api import prune as prune

# criteria
from .criteria import Criterion as Criterion
from .criteria import ScoringContext as ScoringContext
from .criteria import get_criterion as get_criterion
from .criteria import list_criteria as list_criteria
from .criteria import register_criterion as register_criterion

# reporting
from .report import PruneReport as PruneReport

# tasks
from .tasks import MultiTaskAdapter as MultiTaskAdapter
from .tasks import Tasks as Tasks

__all__ = [
    "__version__",
    # pruning
    "prune", "PruneResult", "PruneReport",
    # tasks
    "Tasks", "MultiTaskAdapter",
    # criteria
    "Criterion", "ScoringContext", "register_criterion", "get_criterion", "list_criteria",
]
