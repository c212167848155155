"""torch-pruning's DependencyGraph with a group search that is bounded in memory and time by construction.

Like every module that imports torch_pruning, it lives in `taskprune/graph/`: `pruning_graph.py` reads groups
into plain data, this one finds them. torch-pruning 1.6.1's search has three costs that grow without bound on
real models:

- it re-runs `update_index_mapping` over the whole graph for every root (quadratic in the graph's size);
- it re-propagates a whole index list whenever the list differs in any element, and keeps every list it saw;
- on attention blocks and reshapes (YOLO11's C2PSA: a `view` to heads, `split`, `transpose`, matmul) its
  flatten mappings form cycles that multiply the indices on every lap, so the lists never repeat.

Here the indices reached so far are merged per (node, pruning function), only new (local, root) pairs are
propagated, the mappings are refreshed once per change of the graph, and a root whose search maps more than
`max_work` channel indices, or meets a mapping that raises, is given up on: the caller keeps it whole and says
why.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch_pruning as tp
from torch import nn
from torch_pruning import _helpers as tp_helpers
from torch_pruning import ops as tp_ops
from torch_pruning.dependency import index_mapping as tp_index_mapping
from torch_pruning.dependency import shape_infer as tp_shape_infer

from .._runtime import preserved_modes
from ..tasks import flatten_outputs
from ._buffer_norm import BufferNormPruner, buffer_norm_classes
from ._layer_params import with_custom_layers, with_layer_parameters

__all__ = ["DependencyGraph", "SearchFailed", "TraceFailed", "replay_history"]

# The node types whose index mappings torch-pruning sets in `update_index_mapping`, and its function for each
# (looked up when called, as torch-pruning does).
_MAPPING_UPDATES = {
    tp_ops.OPTYPE.CONCAT: "update_concat_index_mapping",
    tp_ops.OPTYPE.SPLIT: "update_split_index_mapping",
    tp_ops.OPTYPE.RESHAPE: "update_reshape_index_mapping",
    tp_ops.OPTYPE.UNBIND: "update_unbind_index_mapping",
    tp_ops.OPTYPE.EXPAND: "update_expand_index_mapping",
    tp_ops.OPTYPE.SLICE: "update_slice_index_mapping",
}


class TraceFailed(RuntimeError):
    """torch-pruning could not trace the model at all; the message names the step and the error."""


class SearchFailed(RuntimeError):
    """The search from one root was given up; the message says why (the root is then kept whole)."""


class _Group(tp.dependency.Group):
    # Pruning changes channel counts, which the concat/reshape index mappings are computed from.
    def prune(self, idxs: Any = None, record_history: bool = True) -> None:
        super().prune(idxs, record_history)
        self._DG.mapping_stale = True


class DependencyGraph(tp.DependencyGraph):
    """torch-pruning's DependencyGraph with a bounded group search, index mappings refreshed once per change,
    and torch-pruning's own failures confined to the roots they touch.

    Attributes:
        max_work: how many channel indices one root's search may map, summed over every dependency it
            passes, before the root is given up on. The largest group of a zoo, tiny or driving model maps a
            few thousand.
        failed_roots: root layer name -> why its search was given up (filled by `get_all_groups`).
        broken_nodes: node -> why torch-pruning failed to compute its index mapping; roots reaching it fail.
    """

    max_work = 2_000_000

    def build(self, model: nn.Module, example_inputs: Any, forward_fn: Any = None, output_transform: Any = None,
              verbose: bool = True) -> DependencyGraph:
        """`build_dependency` in its steps, so that a failure names its step and a failing index mapping costs
        only its node (torch-pruning's own would abort the whole graph)."""
        self.verbose = verbose
        self.model = model
        self._module2name = {module: name for name, module in model.named_modules()}
        self.ignored_params: list[nn.Parameter] = []
        self.failed_roots: dict[str, str] = {}
        self.broken_nodes: dict[Any, str] = {}
        steps = (("finding unwrapped parameters and buffer norms", lambda: self._find_unwrapped()),
                 ("tracing the forward", lambda: self._trace_graph(example_inputs, forward_fn, output_transform)),
                 ("linking the layers", lambda: self._build_dependency(self.module2node)),
                 ("inferring channel counts", lambda: tp_shape_infer.init_shape_information(self)))
        for step, run in steps:
            try:
                run()
            except Exception as error:
                raise TraceFailed(f"torch-pruning failed while {step} of {type(model).__name__}: "
                                  f"{type(error).__name__}: {error}") from error
        self._index_limits: dict[Any, int] = {}
        self.mapping_stale = True
        self.refresh_index_mapping()
        return self

    def copy_for(self, memo: dict[int, Any]) -> DependencyGraph:
        """This graph for a copy of its model; `memo` maps id(module) -> its copy, as `copy.deepcopy(model, memo)`
        leaves it. Nodes and dependencies are copied one by one: a deepcopy of the graph would recurse along every
        path through it, deeper than Python allows on a ResNet-50."""
        def module_of(module: Any) -> Any:
            if id(module) not in memo:  # torch-pruning's stand-ins for concat, split, reshape, ...
                memo[id(module)] = copy.deepcopy(module, memo)
            return memo[id(module)]

        nodes = {id(node): copy.copy(node) for node in self.module2node.values()}
        for node in self.module2node.values():
            twin_node = nodes[id(node)]
            twin_node.module = module_of(node.module)
            twin_node.inputs = [nodes[id(n)] for n in node.inputs]
            twin_node.outputs = [nodes[id(n)] for n in node.outputs]
            twin_node.dependencies = [copy.copy(dep) for dep in node.dependencies]
            for dep in twin_node.dependencies:
                dep.source, dep.target = nodes[id(dep.source)], nodes[id(dep.target)]
                dep.index_mapping = list(dep.index_mapping)
        twin = copy.copy(self)
        twin.model = module_of(self.model)
        twin.module2node = {module_of(m): nodes[id(n)] for m, n in self.module2node.items()}
        twin._module2name = {module_of(m): name for m, name in self._module2name.items()}
        twin._param_to_name = {module_of(p): name for p, name in self._param_to_name.items()}
        twin.IGNORED_LAYERS_IN_TRACING = [module_of(m) for m in self.IGNORED_LAYERS_IN_TRACING]
        twin.broken_nodes = {nodes[id(n)]: why for n, why in self.broken_nodes.items()}
        twin._index_limits = {nodes[id(n)]: limit for n, limit in self._index_limits.items()}
        twin._pruning_history = list(self._pruning_history)
        twin.failed_roots = dict(self.failed_roots)
        return twin

    def _find_unwrapped(self) -> None:
        with_layer_parameters(self.REGISTERED_PRUNERS)
        pruners = [p for p in (*self.REGISTERED_PRUNERS.values(), *self.CUSTOMIZED_PRUNERS.values()) if p is not None]
        self._in_channel_pruning_fn = {p.prune_in_channels for p in pruners}
        self._out_channel_pruning_fn = {p.prune_out_channels for p in pruners}
        for norm_class in buffer_norm_classes(self.model):
            self.register_customized_layer(norm_class, BufferNormPruner())
        with_custom_layers(self)
        self._param_to_name, self.unwrapped_parameters = self._detect_unwrapped_parameters(None)

    def _trace_graph(self, example_inputs: Any, forward_fn: Any, output_transform: Any) -> None:
        self.module2node = self._trace(self.model, example_inputs, forward_fn, output_transform=output_transform)

    def refresh_index_mapping(self) -> None:
        """torch-pruning's `update_index_mapping`, run only when the graph changed since the last run, node by
        node: a node whose mapping raises is recorded in `broken_nodes` instead of failing every group."""
        if not self.mapping_stale:
            return
        for node in self.module2node.values():
            update = _MAPPING_UPDATES.get(node.type)
            if update is None:
                continue
            try:
                getattr(tp_index_mapping, update)(self, node)
            except Exception as error:  # torch-pruning's shape inference on an unusual reshape or split
                self.broken_nodes[node] = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        self.mapping_stale = False

    def get_pruning_group(self, module: Any, pruning_fn: Any, idxs: Sequence[int]) -> Any:
        if module not in self.module2node:
            raise ValueError(f"module {self._module2name.get(module, module)} is not in the dependency graph")
        if isinstance(module, tp_ops.TORCH_CONV) and module.groups == module.out_channels and module.out_channels > 1:
            pruning_fn = self.REGISTERED_PRUNERS[tp_ops.OPTYPE.DEPTHWISE_CONV].prune_out_channels
        idxs = [idxs] if isinstance(idxs, int) else idxs
        self.refresh_index_mapping()
        root = self.module2node[module]
        root_dep = tp.dependency.Dependency(pruning_fn, pruning_fn, source=root, target=root)
        reached = self._propagate(root_dep, [tp_helpers._HybridIndex(idx=i, root_idx=i) for i in idxs])
        group = _Group()
        group._DG = self
        ignored = {id(p) for p in self.ignored_params}
        for dep, pairs in reached:
            if isinstance(dep.target.module, nn.Parameter) and id(dep.target.module) in ignored:
                continue
            first_per_local: dict[int, Any] = {}  # torch-pruning's merge: one root index per local index
            for pair in pairs:
                first_per_local.setdefault(pair.idx, pair)
            item = tp_helpers.GroupItem(dep, list(first_per_local))
            item.root_idxs = [pair.root_idx for pair in first_per_local.values()]
            group._group.append(item)
        return group

    def _propagate(self, root_dep: Any, start: list[Any]) -> list[tuple[Any, list[Any]]]:
        """Every (dependency, index pairs) the root's indices reach, one entry per (node, pruning function) in
        the order first reached, pairs in the order first reached: the same as torch-pruning's search merged,
        but each pair passes each edge at most once, so the work is linear in the pairs of the result."""
        reached: dict[tuple[int, Any], tuple[Any, list[Any], set[Any]]] = {
            (id(root_dep.target), root_dep.handler): (root_dep, list(start), set(start))}
        stack = [(root_dep, start)]
        work = len(start)
        while stack:
            dep, current = stack.pop()
            for new_dep in dep.target.dependencies:
                if not new_dep.is_triggered_by(dep.handler):
                    continue
                mapped = self._map(new_dep, current)
                work += len(mapped)
                if work > self.max_work:
                    raise SearchFailed(f"the dependency search mapped more than {self.max_work:,} channel indices "
                                       f"(at {self._node_label(new_dep.target)}): its index mappings through "
                                       "reshapes keep producing new indices")
                if not mapped:
                    continue
                self._check_range(new_dep.target, mapped)
                key = (id(new_dep.target), new_dep.handler)
                entry = reached.get(key)
                if entry is None:
                    entry = reached[key] = (new_dep, [], set())
                seen = entry[2]
                fresh = [pair for pair in dict.fromkeys(mapped) if pair not in seen]
                if not fresh:
                    continue
                seen.update(fresh)
                entry[1].extend(fresh)
                stack.append((new_dep, fresh))
        self.last_search_work = work
        return [(dep, pairs) for dep, pairs, _ in reached.values()]

    def _map(self, dep: Any, pairs: list[Any]) -> list[Any]:
        for node in (dep.source, dep.target):
            if node in self.broken_nodes:
                raise SearchFailed(f"torch-pruning could not map channel indices through "
                                   f"{self._node_label(node)} ({self.broken_nodes[node]})")
        try:
            for mapping in dep.index_mapping:
                if mapping is not None:
                    pairs = mapping(pairs)
        except Exception as error:  # torch-pruning's mapping of an unusual reshape or split
            raise SearchFailed(f"torch-pruning's index mapping from {self._node_label(dep.source)} to "
                               f"{self._node_label(dep.target)} raised {type(error).__name__}: {error}") from error
        return pairs

    def _check_range(self, node: Any, pairs: list[Any]) -> None:
        """A channel index of a node is below the number of elements of the tensors around it; an index past
        that comes from a mapping that does not fit this graph (and would grow on every lap of a cycle)."""
        limit = self._index_limits.get(node)
        if limit is None:
            limit = self._index_limits[node] = max(_numel(n) for n in (node, *node.inputs, *node.outputs))
        if limit and any(not 0 <= pair.idx < limit for pair in pairs):
            wrong = next(pair.idx for pair in pairs if not 0 <= pair.idx < limit)
            raise SearchFailed(f"torch-pruning's index mappings give channel index {wrong} at "
                               f"{self._node_label(node)}, whose tensors have {limit:,} elements: they do not "
                               "fit this graph (a reshape or an attention over positions)")

    def _node_label(self, node: Any) -> str:
        name = self._module2name.get(node.module)
        return name if name else str(node.module) if not isinstance(node.module, nn.Parameter) else node.name

    def get_all_groups(self, ignored_layers: Any = (), root_module_types: Any = ()) -> Iterator[Any]:
        """Like torch-pruning's, but a root whose search fails is skipped and remembered in `failed_roots`."""
        visited: set[int] = set()
        ignored = {id(m) for m in list(ignored_layers) + list(self.IGNORED_LAYERS_IN_TRACING)}
        for module in list(self.module2node):
            if id(module) in ignored or id(module) in visited or not isinstance(module, tuple(root_module_types)):
                continue
            pruner = self.get_pruner_of_module(module)
            if pruner is None or pruner.get_out_channels(module) is None:
                continue
            try:
                group = self.get_pruning_group(module, pruner.prune_out_channels,
                                               list(range(pruner.get_out_channels(module))))
            except SearchFailed as error:
                self.failed_roots[self._module2name.get(module, str(module))] = str(error)
                continue
            outs = [dep.target.module for dep, _ in group if self.is_out_channel_pruning_fn(dep.handler)]
            visited.update(id(m) for m in outs)
            if not any(id(m) in ignored for m in outs):
                yield group


def replay_history(model: nn.Module, example_inputs: Any, history: Iterable[Sequence[Any]]) -> None:
    """Prune `model` in place the way a recorded history says (see `PruningGraph.history`)."""
    with preserved_modes(model):
        dg = DependencyGraph().build(model, example_inputs, output_transform=flatten_outputs, verbose=False)
    dg.load_pruning_history([[str(n), bool(o), [int(i) for i in idxs]] for n, o, idxs in history])


def _numel(node: Any) -> int:
    """Elements of the largest tensor a traced node outputs, from its autograd metadata (0 when unknown)."""
    shapes = [meta.shape for meta in getattr(node.grad_fn, "_input_metadata", ())]
    return max((math.prod(shape) for shape in shapes), default=0)
