"""What a prune did and what it would see: `PruneReport` (a rich table, JSON, markdown), `inspect` (the channel
groups, their tasks and the protected outputs, before pruning) and, imported on first use, `plots` (pictures; needs
taskprune[plot])."""

from .inspection import GroupInfo as GroupInfo
from .inspection import LayerInfo as LayerInfo
from .inspection import ModelReport as ModelReport
from .inspection import inspect as inspect
from .report import GroupChange as GroupChange
from .report import PruneReport as PruneReport

__all__ = ["GroupChange", "GroupInfo", "LayerInfo", "ModelReport", "PruneReport", "inspect"]
