"""The one module that talks to torch-pruning: the dependency graph, its channel groups, and applying a plan.

torch-pruning's API churns between releases; everything that touches it lives here so the rest of taskprune sees
plain data: `ChannelGroup`s with the parameter slices every channel owns, the output layers that must keep their
channels, and a `PruningGraph.apply` that removes the channels a plan names.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.modules.module import register_module_forward_hook
from torch_pruning import ops as tp_ops

from .._runtime import copy_model, preserved_modes, trainable_copy, with_autograd
from ..groups import ChannelGroup, ParamSlice
from ..layers import custom_kinds, kind_of, param_slices
from ..tasks import MultiTaskAdapter, Tasks, call_model, flatten_outputs, output_leaves
from ._depgraph import DependencyGraph, replay_history
from .attribution import NodeInfo, attribute_tasks

__all__ = ["PruningGraph", "is_tp_importance", "module_task_attribution", "replay_history"]

# Layers whose output channel count is their own choice (not copied from their input): where tracing back from
# an output stops, and what is protected there.
_CHANNEL_DEFINING = {tp_ops.OPTYPE.CONV, tp_ops.OPTYPE.LINEAR, tp_ops.OPTYPE.EMBED, tp_ops.OPTYPE.MHA,
                     tp_ops.OPTYPE.LSTM, tp_ops.OPTYPE.PARAMETER}

_ROOT_TYPES = (tp_ops.TORCH_CONV, tp_ops.TORCH_LINEAR)  # torch's layers whose output channels start a group


def _custom_roots() -> tuple[type, ...]:
    """A user's registered layers with output channels of their own (not tied to the input's) start groups too."""
    return tuple(t for kind in custom_kinds() if not kind.tied for t in kind.types)


def _defines_channels(module: Any) -> bool:
    kind = kind_of(module)
    return kind is not None and kind.custom and not kind.tied


class PruningGraph:
    """torch-pruning's DependencyGraph of a model, read into plain `ChannelGroup`s with task attribution.

    Args:
        model: the module to analyse (and later prune in place through `apply`).
        example_inputs: what `model` is called with (tensor, tuple of args or dict of kwargs).
        adapter: splits the model output into tasks.
        protect: fnmatch patterns of module names whose output channels are never pruned.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, adapter: MultiTaskAdapter,
                 protect: Sequence[str] = ()):
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        self._by_name = dict(model.named_modules())
        traced: dict[str, Any] = {}
        executed: set[int] = set()

        with_parameters = {id(m) for m in model.modules() if any(True for _ in m.parameters(recurse=False))}

        def record(module: nn.Module, _inputs: Any, _output: Any) -> None:
            if id(module) in with_parameters:
                executed.add(id(module))

        def forward(module: nn.Module, inputs: Any) -> Any:
            hook = register_module_forward_hook(record)  # one process-wide hook, not one per layer
            try:
                traced["output"] = call_model(module, inputs)
            finally:
                hook.remove()
            return traced["output"]

        # tracing follows autograd, so it must run with gradients on even inside a caller's no_grad; torch-pruning
        # puts the model in eval mode to trace it, and every submodule gets its own mode back
        with warnings.catch_warnings(record=True) as caught, torch.enable_grad(), preserved_modes(model):
            warnings.simplefilter("always")
            self.dg = DependencyGraph().build(model, example_inputs, forward_fn=forward,
                                              output_transform=flatten_outputs, verbose=True)
        self.warnings = [str(w.message).strip().splitlines()[0] for w in caught
                         if "Unwrapped" in str(w.message) or "Unknown operation" in str(w.message)]
        self._output_fns = {t.grad_fn for t in flatten_outputs(traced["output"]) if t.grad_fn is not None}
        self.output_layers_by_key = self._find_output_layers(traced["output"])
        self.output_layers = {name for names in self.output_layers_by_key.values() for name in names}
        self.protected = self.output_layers | self._match_protect(protect)
        self.node_tasks = attribute_tasks(self._node_infos(), adapter, traced["output"])
        self.groups = self._read_groups()
        self.unusual = self._unusual_parts(executed)

    # -- analysis ---------------------------------------------------------------------------------------------
    def _unusual_parts(self, executed: set[int]) -> list[str]:
        """What in this graph DepGraph may misread (so `prune` probes every group); empty for plain conv nets."""
        found = [f"{self.names[m]} runs but is not traced (a dead branch?)" for m in self.model.modules()
                 if id(m) in executed and m not in self.dg.module2node and m in self.names
                 and tp_ops.module2type(m) != tp_ops.OPTYPE.ELEMENTWISE]
        for module, node in self.dg.module2node.items():
            if node.type in _UNUSUAL_TYPES:
                found.append(f"{node.type.name.lower()} {self._node_name(module)}")
            elif node.type == tp_ops.OPTYPE.ELEMENTWISE and not str(getattr(module, "_grad_fn", "")).startswith(
                    _PLAIN_ELEMENTWISE) and str(getattr(module, "_grad_fn", "")) != "TBackward0":
                found.append(f"operation {getattr(module, '_grad_fn', module)}")
            elif node.type == tp_ops.OPTYPE.CONCAT and len({id(n) for n in node.inputs}) < len(node.inputs):
                found.append(f"a tensor concatenated with itself at {self._node_name(module)}")
        return found

    def _node_infos(self) -> list[NodeInfo]:
        infos = []
        for module, node in self.dg.module2node.items():
            infos.append(NodeInfo(key=id(module), name=self._node_name(module), grad_fn=node.grad_fn,
                                  inputs=tuple(id(n.module) for n in node.inputs),
                                  is_output=node.grad_fn in self._output_fns))
        return infos

    def _node_name(self, module: Any) -> str:
        return self.names.get(module) or self.dg._module2name.get(module) or repr(module)

    def _find_output_layers(self, model_output: Any) -> dict[str, list[str]]:
        """Per output key, the layers whose output channels reach it without another channel-defining layer."""
        nodes_by_fn = {node.grad_fn: node for node in self.dg.module2node.values()}
        found: dict[str, list[str]] = {}
        for key, tensor in output_leaves(model_output):
            start = nodes_by_fn.get(tensor.grad_fn)
            stack, seen, layers = ([start] if start is not None else []), set(), []
            while stack:
                current = stack.pop()
                if id(current) in seen:
                    continue
                seen.add(id(current))
                is_depthwise = current.type == tp_ops.OPTYPE.DEPTHWISE_CONV
                if current.module in self.names or is_depthwise:
                    layers.append(self._node_name(current.module))
                if (current.type in _CHANNEL_DEFINING or _defines_channels(current.module)) and not is_depthwise:
                    continue  # this layer chose the channel count: nothing before it decides the output shape
                stack.extend(current.inputs)
            found[key] = sorted(set(layers))
        return found

    def _match_protect(self, patterns: Sequence[str]) -> set[str]:
        matched: set[str] = set()
        for pattern in patterns:
            hits = {n for n in self._by_name if n and fnmatch.fnmatchcase(n, pattern)}
            if not hits:
                sample = ", ".join(list(n for n in self._by_name if n)[:8])
                raise ValueError(f"protect pattern {pattern!r} matches no module; module names look like: {sample}")
            matched |= hits
        return matched

    def _read_groups(self) -> list[ChannelGroup]:
        ignored = [self._by_name[n] for n in self.protected if n in self._by_name]
        groups: list[ChannelGroup] = []
        self._roots: list[tuple[nn.Module, Any]] = []
        for tp_group in self.dg.get_all_groups(ignored_layers=ignored,
                                               root_module_types=_ROOT_TYPES + _custom_roots()):
            group = self._read_group(len(groups), tp_group)
            if group is None:
                continue
            groups.append(group)
            self._roots.append((tp_group[0].dep.target.module, tp_group[0].dep.handler))
        self.warnings += [f"{root}: kept whole: {reason}" for root, reason in self.dg.failed_roots.items()]
        return groups

    def _read_group(self, index: int, tp_group: Any) -> ChannelGroup | None:
        root_module = tp_group[0].dep.target.module
        channels = len(tp_group[0].idxs)
        out_layers: list[str] = []
        in_layers: list[str] = []
        slices: list[ParamSlice] = []
        tasks: set[str] = set()
        kept_whole = ""
        for item in tp_group:
            module, handler = item.dep.target.module, item.dep.handler
            if not isinstance(module, (nn.Module, nn.Parameter)) or isinstance(module, _TP_VIRTUAL):
                continue
            name = self._node_name(module)
            tasks |= self.node_tasks.get(id(module), frozenset())
            is_out = self.dg.is_out_channel_pruning_fn(handler)
            (out_layers if is_out else in_layers).append(name)
            if any(r is None for r in item.root_idxs):
                continue
            kind = kind_of(module)
            if kind is not None and isinstance(module, nn.Module) and kind.reason_kept_whole(module, name):
                kept_whole = kind.reason_kept_whole(module, name)
            local = torch.as_tensor(list(item.idxs), dtype=torch.long)
            root = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
            if isinstance(module, nn.Parameter):  # unwrapped: a class token, position embedding, layer scale
                name = self.dg._param_to_name.get(module, name)
            slices.extend(param_slices(name, module, is_out, local, root, dim=item.dep.target.pruning_dim))
        if not slices:
            return None
        return ChannelGroup(index=index, layer=self._node_name(root_module), channels=channels,
                            out_layers=tuple(dict.fromkeys(out_layers)), in_layers=tuple(dict.fromkeys(in_layers)),
                            slices=tuple(slices), tasks=tuple(sorted(tasks)), kept_whole=kept_whole)

    def kept_whole(self) -> dict[str, str]:
        """Root layer -> why its channels are kept whole, the root with the most parameters first: groups the
        planner may not touch, and roots whose dependency search torch-pruning could not finish (no group)."""
        reasons = {g.layer: g.kept_whole for g in self.groups if g.kept_whole}
        reasons.update((root, f"kept whole: {why}") for root, why in self.dg.failed_roots.items())

        def size(root: str) -> int:
            module = self._by_name.get(root)
            return sum(p.numel() for p in module.parameters(recurse=False)) if module is not None else 0

        return {root: reasons[root] for root in sorted(reasons, key=size, reverse=True)}

    # -- changes ----------------------------------------------------------------------------------------------
    def apply(self, plan: Mapping[int, Sequence[int]]) -> dict[str, list[int]]:
        """Remove, for every group index in `plan`, the listed channels (root indices). Returns the channel map:
        for every layer whose output channels changed, the original indices it keeps."""
        alive: dict[str, list[int]] = {}
        for index in sorted(plan):
            idxs = sorted(int(i) for i in plan[index])
            if not idxs:
                continue
            module, handler = self._roots[index]
            tp_group = self.dg.get_pruning_group(module, handler, idxs)
            tied = sorted(set(int(i) for i in tp_group[0].idxs) - set(idxs))
            if tied:
                raise RuntimeError(f"removing channels {idxs[:8]} of {self.names.get(module, module)} would also "
                                   f"remove {tied[:8]}: its channels are tied (a tensor concatenated with itself?)")
            for item in tp_group:
                target = item.dep.target.module
                if not self.dg.is_out_channel_pruning_fn(item.dep.handler) or target not in self.names:
                    continue
                name = self.names[target]
                current = alive.setdefault(name, list(range(self.dg.get_out_channels(target) or 0)))
                removed = set(int(i) for i in item.idxs)
                alive[name] = [orig for pos, orig in enumerate(current) if pos not in removed]
            tp_group.prune()
        return alive

    def tp_scores(self, importance: Any, index: int) -> torch.Tensor:
        """Scores of group `index` by a torch-pruning importance (zeros where it has none)."""
        module, handler = self._roots[index]
        channels = self.groups[index].channels
        scores = importance(self.dg.get_pruning_group(module, handler, list(range(channels))))
        return torch.zeros(channels) if scores is None else scores.detach().float().cpu()

    def copy(self) -> PruningGraph:
        """This graph on a copy of its model, without tracing again, to prune (`apply`) while this one stays.

        Modules and graph nodes are copied; tensors and autograd nodes are shared: pruning replaces a tensor and
        never writes into it, and autograd nodes are only read. So a copy costs no parameter memory."""
        shared: dict[int, Any] = {id(node.grad_fn): node.grad_fn for node in self.dg.module2node.values()}
        shared.update((id(t), t) for t in (*self.model.parameters(), *self.model.buffers()))
        twin = copy.copy(self)
        twin.model = copy_model(self.model, shared)
        twin.dg = self.dg.copy_for(shared)
        twin.names = {m: n for n, m in twin.model.named_modules()}
        twin._by_name = dict(twin.model.named_modules())
        twin._roots = [(shared[id(module)], handler) for module, handler in self._roots]
        return twin

    def history(self) -> list[list[Any]]:
        """What was removed, in torch-pruning's pruning-history form [layer, is_out_channels, indices]."""
        return [[name, bool(is_out), [int(i) for i in idxs]] for name, is_out, idxs in self.dg.pruning_history()]


# Operations DepGraph follows exactly: channel-wise or channel-preserving. Anything else makes prune() probe.
_PLAIN_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Silu", "Hardswish", "Hardsigmoid", "Gelu",
                      "LeakyRelu", "Elu", "Tanh", "Softplus", "Clamp", "Hardtanh", "Neg", "Upsample", "MaxPool",
                      "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "Clone", "Mish")
_UNUSUAL_TYPES = {tp_ops.OPTYPE.RESHAPE, tp_ops.OPTYPE.UNBIND, tp_ops.OPTYPE.EXPAND, tp_ops.OPTYPE.SLICE,
                  tp_ops.OPTYPE.PARAMETER, tp_ops.OPTYPE.CUSTOMIZED, tp_ops.OPTYPE.SPLIT, tp_ops.OPTYPE.MHA,
                  tp_ops.OPTYPE.LSTM, tp_ops.OPTYPE.GN}  # GroupNorm: channels must stay divisible

_TP_VIRTUAL = (tp_ops._ConcatOp, tp_ops._SplitOp, tp_ops._ElementWiseOp, tp_ops._ReshapeOp, tp_ops._OutputOp,
               tp_ops._UnbindOp, tp_ops._ExpandOp, tp_ops._SliceOp)


def is_tp_importance(obj: Any) -> bool:
    """Whether `obj` is a torch-pruning importance."""
    return isinstance(obj, tp.importance.Importance)


@with_autograd
def module_task_attribution(model: nn.Module, example_inputs: Any, adapter: MultiTaskAdapter | None = None,
                            ) -> dict[str, frozenset[str]]:
    """Every traced layer's qualified name -> the tasks whose outputs it reaches.

    Without an adapter every output leaf is its own task. The model is traced on a copy and left as it was.
    """
    work = trainable_copy(model)  # the trace follows autograd, so frozen layers must require grad in the copy
    if adapter is None:
        with torch.no_grad():
            adapter = Tasks.from_output(call_model(work, example_inputs))
    graph = PruningGraph(work, example_inputs, adapter)
    return {graph.names[m]: graph.node_tasks.get(id(m), frozenset())
            for m in graph.dg.module2node if m in graph.names}
