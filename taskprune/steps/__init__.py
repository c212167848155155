"""Pruning in steps: the step loop (`Steps`), `prune_iteratively` on a schedule, and `prune_within`, which steps as
far as the tasks' limits allow and resumes from its checkpoint."""

from .iterative import prune_iteratively as prune_iteratively
from .loop import Steps as Steps
from .loop import compose_channel_maps as compose_channel_maps
from .within import WithinResult as WithinResult
from .within import prune_within as prune_within

__all__ = ["Steps", "WithinResult", "compose_channel_maps", "prune_iteratively", "prune_within"]
