"""The dependency graph: the ONLY code that imports torch_pruning, so its API churn stays behind one door.

- `pruning_graph.py`: `PruningGraph`, torch-pruning's DependencyGraph read into plain `ChannelGroup`s, the output
  layers every task needs, the tasks each group serves, and applying a plan.
- `_depgraph.py`: the group search, bounded in memory and time by construction; `_buffer_norm.py`: pruning norms
  that keep their terms in buffers (torchvision's FrozenBatchNorm2d).
- `attribution.py`: which tasks every traced operation serves (networkx).
- `unsafe.py`: the one-channel probe that finds the groups the graph gets wrong, and keeps them whole.
- `profile.py`: `ModelProfile`, parameters and MACs per layer and in all, counted once per `prune` call.
"""

from .profile import ModelProfile as ModelProfile
from .profile import count_macs as count_macs
from .profile import count_params as count_params
from .profile import counting as counting
from .profile import layer_macs as layer_macs
from .profile import profile_model as profile_model
from .pruning_graph import PruningGraph as PruningGraph
from .pruning_graph import is_tp_importance as is_tp_importance
from .pruning_graph import module_task_attribution as module_task_attribution
from .pruning_graph import replay_history as replay_history
from .unsafe import find_unsafe_groups as find_unsafe_groups
from .unsafe import protect_unsafe_groups as protect_unsafe_groups

__all__ = ["ModelProfile", "PruningGraph", "count_macs", "count_params", "counting", "find_unsafe_groups",
           "is_tp_importance", "layer_macs", "module_task_attribution", "profile_model", "protect_unsafe_groups",
           "replay_history"]
