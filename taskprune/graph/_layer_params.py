"""torch-pruning's pruning functions for what `taskprune.layers` knows and torch-pruning does not.

- torch-pruning slices a convolution's `weight` and `bias` and nothing else, so a subclass with a parameter of its
  own along the output channels (a weight-standardised conv's gain of shape [out, 1, 1, 1], NFNet's
  ScaledStdConv2d) keeps its old length and the pruned forward fails. `with_layer_parameters` slices every such
  parameter (`layers.channel_parameters` says which) with the channels.
- A user's layer registered with `taskprune.register_layer` gets a pruner built from its kind's parameter
  dimensions (`with_custom_layers`).

`_depgraph.DependencyGraph` installs both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch_pruning import ops as tp_ops
from torch_pruning.pruner import function as tp_function

from ..layers import LayerKind, channel_parameters, custom_kinds, kind_of

__all__ = ["KindPruner", "with_custom_layers", "with_layer_parameters"]


def with_layer_parameters(pruners: dict[Any, Any]) -> None:
    """Replace, in a DependencyGraph's `REGISTERED_PRUNERS`, the pruners of convolutions and linear layers by ones
    that also slice the layer's own per-output-channel parameters."""
    for optype, base in ((tp_ops.OPTYPE.CONV, tp_function.ConvPruner),
                         (tp_ops.OPTYPE.DEPTHWISE_CONV, tp_function.DepthwiseConvPruner),
                         (tp_ops.OPTYPE.LINEAR, tp_function.LinearPruner)):
        if type(pruners.get(optype)) is base:
            pruners[optype] = _extended(base)()


def _extended(base: type) -> type:
    class LayerParametersPruner(base):  # type: ignore[misc, valid-type]
        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            channels = self.get_out_channels(layer)
            own = channel_parameters(layer)
            super().prune_out_channels(layer, idxs)
            removed = {int(i) for i in idxs}
            keep = [i for i in range(channels) if i not in removed]
            for name in own:
                setattr(layer, name, self._prune_parameter_and_grad(getattr(layer, name), keep, 0))
            return layer

        if base is tp_function.DepthwiseConvPruner:  # one set of channels: either side prunes both
            prune_in_channels = prune_out_channels

    LayerParametersPruner.__name__ = LayerParametersPruner.__qualname__ = f"LayerParameters{base.__name__}"
    return LayerParametersPruner


def with_custom_layers(graph: Any) -> None:
    """Register, on a torch-pruning DependencyGraph about to trace `graph.model`, a pruner for every class of the
    model that `taskprune.register_layer` describes; the layer's own sub-modules are left to it."""
    if not custom_kinds():
        return
    pruners: dict[type, KindPruner] = {}
    for module in graph.model.modules():
        kind = kind_of(module)
        if kind is None or not kind.custom:
            continue
        if type(module) not in pruners:
            pruners[type(module)] = KindPruner(kind)
            graph.register_customized_layer(type(module), pruners[type(module)])
        graph.IGNORED_LAYERS_IN_TRACING.extend(m for m in module.modules() if m is not module)


class KindPruner(tp_function.BasePruningFunc):
    """Removes channels of a registered layer from the parameters its `LayerKind` names, along their dimensions.

    Raises:
        ValueError: after pruning, the kind's `channels` still reports the old count (it reads an attribute the
            pruner does not change, rather than a parameter's shape).
    """

    def __init__(self, kind: LayerKind) -> None:
        super().__init__()
        self.kind = kind
        if kind.tied:  # one set of channels: pruning either side prunes both (torch-pruning's convention)
            self.prune_in_channels = self.prune_out_channels  # type: ignore[method-assign]
            self.get_in_channels = self.get_out_channels  # type: ignore[method-assign]

    def _channels(self, layer: nn.Module, side: int) -> int:
        if self.kind.channels is None:
            raise ValueError(f"layer kind {self.kind.name!r} has no `channels`: taskprune cannot prune it")
        return int(self.kind.channels(layer)[side])

    def _prune(self, layer: nn.Module, idxs: Sequence[int], is_out: bool) -> nn.Module:
        side = 1 if is_out else 0
        before = self._channels(layer, side)
        removed = {int(i) for i in idxs}
        keep = [i for i in range(before) if i not in removed]
        for attr, dim in self.kind.param_dims(layer, is_out):
            param = getattr(layer, attr, None)
            if isinstance(param, nn.Parameter):
                setattr(layer, attr, self._prune_parameter_and_grad(param, keep, dim % param.dim()))
        after = self._channels(layer, side)
        if after != len(keep):
            raise ValueError(f"register_layer({self.kind.name}): after removing {len(removed)} of {before} "
                             f"{'output' if is_out else 'input'} channels, `channels` still says {after}; read the "
                             "counts from the parameters' shapes (e.g. lambda m: (m.weight.shape[1], "
                             "m.weight.shape[0]))")
        return layer

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self._prune(layer, idxs, is_out=True)

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self._prune(layer, idxs, is_out=False)

    def get_out_channels(self, layer: nn.Module) -> int:
        return self._channels(layer, 1)

    def get_in_channels(self, layer: nn.Module) -> int:
        return self._channels(layer, 0)
