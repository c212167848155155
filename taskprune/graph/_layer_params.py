"""torch-pruning's conv and linear pruning functions, extended to a layer's own per-output-channel parameters.

torch-pruning slices a convolution's `weight` and `bias` and nothing else, so a subclass with a parameter of its
own along the output channels (a weight-standardised conv's gain of shape [out, 1, 1, 1], NFNet's
ScaledStdConv2d) keeps its old length and the pruned forward fails. These pruners slice every such parameter
(`groups.channel_parameters` says which) with the channels; `_depgraph.DependencyGraph` installs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch_pruning import ops as tp_ops
from torch_pruning.pruner import function as tp_function

from ..groups import channel_parameters

__all__ = ["with_layer_parameters"]


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
