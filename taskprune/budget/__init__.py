"""From scores to a plan that meets the budget: one `Target` per budget kind (`targets.py`) with its cost model
(`cost.py`), the exact planner (`params.py`, `exact.py`), the latency knapsack over a latency table (`latency.py`)
and its measured passes (`passes.py`), and `plan` (`planner.py`), which hands a `PlanRequest` to its target.
Planning only: `taskprune.latency` measures."""

from .cost import ChannelCount as ChannelCount
from .cost import Cost as Cost
from .cost import CostModel as CostModel
from .latency import RELATIVE_TOLERANCE as RELATIVE_TOLERANCE
from .latency import LatencyModel as LatencyModel
from .latency import plan_latency as plan_latency
from .params import BUDGET_TOLERANCE as BUDGET_TOLERANCE
from .params import plan_pruning as plan_pruning
from .plan import Plan as Plan
from .plan import Removals as Removals
from .plan import UnreachableBudget as UnreachableBudget
from .plan import budget_fix as budget_fix
from .plan import kept_whole_summary as kept_whole_summary
from .plan import with_kept_whole as with_kept_whole
from .planner import plan as plan
from .request import PlanRequest as PlanRequest
from .targets import Outcome as Outcome
from .targets import Target as Target
from .targets import get_target as get_target
from .targets import list_targets as list_targets
from .targets import register_target as register_target
from .targets import unregister_target as unregister_target

TARGETS = tuple(list_targets())
"""The built-in targets' names: "params", "macs", "channels", "latency" (`list_targets()` also lists yours)."""

__all__ = ["BUDGET_TOLERANCE", "RELATIVE_TOLERANCE", "TARGETS", "ChannelCount", "Cost", "CostModel", "LatencyModel",
           "Outcome", "Plan", "PlanRequest", "Removals", "Target", "UnreachableBudget", "budget_fix", "get_target",
           "kept_whole_summary", "list_targets", "plan", "plan_latency", "plan_pruning", "register_target",
           "unregister_target", "with_kept_whole"]
