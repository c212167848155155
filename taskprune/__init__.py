"""taskprune: task-aware structured pruning and feature distillation for multi-task vision models.

    >>> import taskprune
    >>> result = taskprune.prune(model, example_inputs, ratio=0.3)
    >>> print(result.report)

Subpackages that `prune` does not need load on first use (`taskprune.driving`, the reference driving model;
`taskprune.testing`, tiny models; `taskprune.plots`, pictures), so `import taskprune` stays lean: no rich,
networkx or matplotlib. `taskprune.latency` (measuring the device) loads with `prune`, whose target="latency"
plans with it.
"""

from typing import Any as _Any

from ._version import __version__ as __version__
from .criteria import Criterion as Criterion
from .criteria import ScoringContext as ScoringContext
from .criteria import get_criterion as get_criterion
from .criteria import list_criteria as list_criteria
from .criteria import register_criterion as register_criterion
from .distill import Distill as Distill
from .distill import FeatureDistiller as FeatureDistiller
from .extract import extract as extract
from .keeping import export_onnx as export_onnx
from .keeping import load as load
from .keeping import save as save
from .layers import LayerKind as LayerKind
from .layers import list_layer_kinds as list_layer_kinds
from .layers import register_layer as register_layer
from .prune import PruneResult as PruneResult
from .prune import prune as prune
from .reporting import ModelReport as ModelReport
from .reporting import PruneReport as PruneReport
from .reporting import inspect as inspect
from .steps import WithinResult as WithinResult
from .steps import prune_iteratively as prune_iteratively
from .steps import prune_within as prune_within
from .tasks import MultiTaskAdapter as MultiTaskAdapter
from .tasks import Tasks as Tasks
from .train import FinetuneConfig as FinetuneConfig
from .train import finetune as finetune

__all__ = [
    "__version__",
    # pruning: one verb, in steps, or as far as the tasks allow; what it reports
    "prune", "prune_iteratively", "prune_within", "PruneResult", "PruneReport", "WithinResult",
    # per-task control and a look before pruning
    "extract", "inspect", "ModelReport",
    # tasks
    "Tasks", "MultiTaskAdapter",
    # criteria
    "Criterion", "ScoringContext", "register_criterion", "get_criterion", "list_criteria",
    # a layer of your own
    "register_layer", "LayerKind", "list_layer_kinds",
    # recovery
    "Distill", "FeatureDistiller", "finetune", "FinetuneConfig",
    # keeping the result
    "save", "load", "export_onnx",
]

_SUBPACKAGES = ("budget", "criteria", "distill", "driving", "graph", "keeping", "latency", "reporting", "saving",
                "steps",
                "testing", "train")
_MOVED = {"plots": "reporting.plots"}  # a documented path whose module lives in a folder


def __getattr__(name: str) -> _Any:
    """`taskprune.plots`, `taskprune.driving`, ...: imported on first use."""
    if name in _SUBPACKAGES or name in _MOVED:
        import importlib

        return importlib.import_module(f".{_MOVED.get(name, name)}", __name__)
    raise AttributeError(f"module 'taskprune' has no attribute {name!r}")
