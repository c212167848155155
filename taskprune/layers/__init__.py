"""What taskprune knows about each family of layers, in one place: one `LayerKind` per family.

- `kind.py`: `LayerKind`, the parameter slices a channel owns, the keep-whole rule, the per-channel parameter that
  prices the parameter-free layers after it, and how the layer is timed at other widths.
- `torch_layers.py`: the kinds of torch.nn (convolutions, linear, norms, PReLU, embeddings).
- `registry.py`: `register_layer` for a user's own layer, `kind_of(module)`, `list_layer_kinds`.
- `slices.py`: the parameter slices of a group's channels, read from the kinds.

`taskprune.graph` adapts the custom kinds to torch-pruning; nothing here imports it.
"""

from .kind import LayerKind as LayerKind
from .registry import custom_kinds as custom_kinds
from .registry import get_layer_kind as get_layer_kind
from .registry import kind_of as kind_of
from .registry import list_layer_kinds as list_layer_kinds
from .registry import register_layer as register_layer
from .registry import unregister_layer as unregister_layer
from .slices import channel_parameters as channel_parameters
from .slices import param_slices as param_slices

__all__ = ["LayerKind", "channel_parameters", "custom_kinds", "get_layer_kind", "kind_of", "list_layer_kinds",
           "param_slices", "register_layer", "unregister_layer"]
