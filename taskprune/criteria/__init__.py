"""Channel importance criteria: a registry by name and one file per family."""

from . import conflict as conflict
from . import magnitude as magnitude
from . import random as random
from . import taylor as taylor
from .base import Criterion as Criterion
from .base import Scorer as Scorer
from .base import ScoringContext as ScoringContext
from .base import TaskWeighted as TaskWeighted
from .base import WithDefaults as WithDefaults
from .conflict import ConflictTaylor as ConflictTaylor
from .magnitude import Magnitude as Magnitude
from .random import Random as Random
from .registry import get_criterion as get_criterion
from .registry import list_criteria as list_criteria
from .registry import register_criterion as register_criterion
from .registry import unregister_criterion as unregister_criterion
from .taylor import TaskTaylor as TaskTaylor
from .taylor import Taylor as Taylor

__all__ = [
    "Criterion", "Scorer", "ScoringContext", "TaskWeighted", "WithDefaults", "register_criterion",
    "unregister_criterion", "get_criterion", "list_criteria",
    "Magnitude", "Taylor", "TaskTaylor", "ConflictTaylor", "Random",
]
