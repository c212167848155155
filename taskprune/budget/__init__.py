"""From scores to a plan that meets the budget: the exact params / MACs / channels cost model (`params.py`), the
latency knapsack over a latency table (`latency.py`), and the planner that picks the channel multiple and corrects
the aim with what the caller measured (`planner.py`, `passes.py`). Planning only: `taskprune.latency` measures."""

from .latency import RELATIVE_TOLERANCE as RELATIVE_TOLERANCE
from .latency import LatencyModel as LatencyModel
from .latency import plan_latency as plan_latency
from .params import BUDGET_TOLERANCE as BUDGET_TOLERANCE
from .params import TARGETS as TARGETS
from .params import CostModel as CostModel
from .params import plan_pruning as plan_pruning
from .plan import Plan as Plan
from .plan import Removals as Removals
from .plan import UnreachableBudget as UnreachableBudget
from .plan import budget_fix as budget_fix
from .plan import kept_whole_summary as kept_whole_summary
from .plan import with_kept_whole as with_kept_whole
from .planner import PlanRequest as PlanRequest
from .planner import plan as plan

__all__ = ["BUDGET_TOLERANCE", "RELATIVE_TOLERANCE", "TARGETS", "CostModel", "LatencyModel", "Plan", "PlanRequest",
           "Removals", "UnreachableBudget", "budget_fix", "kept_whole_summary", "plan", "plan_latency", "plan_pruning",
           "with_kept_whole"]
