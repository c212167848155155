"""Layer kinds by name: register a user's own layer, look a module's kind up, list the kinds."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .kind import LayerKind
from .torch_layers import TORCH_LAYER_KINDS

__all__ = ["custom_kinds", "get_layer_kind", "kind_of", "list_layer_kinds", "register_layer", "unregister_layer"]

_BUILTIN: dict[str, LayerKind] = {kind.name: kind for kind in TORCH_LAYER_KINDS}
_CUSTOM: dict[str, LayerKind] = {}  # a user's layers, looked up before torch's (a subclass of a conv, say)


def register_layer(layer_type: type[nn.Module] | LayerKind, *, out_params: Mapping[str, int] | None = None,
                   in_params: Mapping[str, int] | None = None,
                   channels: Callable[[nn.Module], tuple[int, int]] | None = None, name: str | None = None,
                   tied: bool = False, keep_whole: Callable[[nn.Module, str], str] | None = None,
                   per_channel: str | None = None, resize: Callable[[nn.Module, int, int], nn.Module] | None = None,
                   input_dim: int = 1, weight_in_dim: int | None = 1,
                   macs: Callable[[nn.Module, tuple[Any, ...], Any], float] | None = None) -> LayerKind:
    """Teach taskprune a layer of your own, once: the dependency graph, the budgets, latency tables and the
    reports then handle it like a convolution.

    Args:
        layer_type: the module class (its subclasses too), or a ready `LayerKind` (then no other argument).
        out_params: parameter attribute -> the dimension that runs along the layer's output channels: what goes
            with an output channel (`{"weight": 0, "bias": 0}` for a convolution).
        in_params: the same for the input channels (`{"weight": 1}`); for a `tied` layer, `out_params`.
        channels: module -> (input channels, output channels).
        name: the kind's name (default: the class name).
        tied: input and output are one set of channels (a norm-like layer): removing either removes both.
        keep_whole: (module, qualified name) -> why its channels may not be removed, "" when they may.
        per_channel: a parameter with one element per output channel (usually "bias"): the parameter-free layers
            after it (activations) are priced through it for target="macs".
        resize: (module, c_in, c_out) -> a fresh layer like `module` at these channel counts; with it,
            target="latency" times the layer at other widths (without it the layer counts as unmeasured).
        input_dim: the input tensor's channel dimension, for timing (1 for NCHW).
        weight_in_dim: the dimension of its `weight` that runs along the input channels, for timing.
        macs: (module, inputs, output) -> MACs of one call, for target="macs" and the report.

    Returns:
        The registered `LayerKind`.

    Example:
        >>> taskprune.register_layer(GatedConv2d, out_params={"weight": 0, "bias": 0, "gate": 0},
        ...                          in_params={"weight": 1, "gate": 1},
        ...                          channels=lambda m: (m.in_channels, m.out_channels))
    """
    if isinstance(layer_type, LayerKind):
        kind = layer_type
    else:
        if not isinstance(layer_type, type) or not issubclass(layer_type, nn.Module):
            raise TypeError(f"register_layer: layer_type must be an nn.Module class or a LayerKind, "
                            f"got {layer_type!r}")
        owner = layer_type.__name__
        outs = _checked_dims(owner, "out_params", out_params)
        ins = outs if tied else _checked_dims(owner, "in_params", in_params)
        if channels is None or not callable(channels):
            raise TypeError(f"register_layer({owner}): channels must be a function module -> (in, out) channels")
        kind = LayerKind(name or owner, (layer_type,), lambda _m, is_out: outs if is_out else ins,
                         channels=channels, keep_whole=keep_whole, per_channel=per_channel, timed=resize is not None,
                         tied=tied, input_dim=input_dim, weight_in_dim=None if tied else weight_in_dim,
                         resize=resize, macs=macs, custom=True)
    if kind.name in _BUILTIN:
        raise ValueError(f"layer kind {kind.name!r} is one of torch's; choose another name "
                         f"(taken: {', '.join(sorted(_BUILTIN))})")
    known = _CUSTOM.get(kind.name)
    if known is not None and known.types != kind.types:
        raise ValueError(f"a layer kind named {kind.name!r} is already registered for "
                         f"{', '.join(t.__name__ for t in known.types)}; unregister_layer({kind.name!r}) first")
    _CUSTOM[kind.name] = kind
    return kind


def _checked_dims(owner: str, argument: str, dims: Mapping[str, int] | None) -> tuple[tuple[str, int], ...]:
    if not isinstance(dims, Mapping) or not dims:
        raise TypeError(f"register_layer({owner}): {argument} must be a non-empty mapping parameter name -> "
                        f"dimension, e.g. {{'weight': 0, 'bias': 0}}; got {dims!r}")
    for param, dim in dims.items():
        if not isinstance(param, str) or isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"register_layer({owner}): {argument} maps parameter names to int dimensions; "
                            f"got {param!r}: {dim!r}")
    return tuple(dims.items())


def unregister_layer(name: str) -> None:
    """Remove a layer kind registered with `register_layer` (a plug-in's tests clean up after themselves).

    Raises:
        ValueError: `name` is not a registered custom kind (the message lists those that are).
    """
    if name not in _CUSTOM:
        raise ValueError(f"Unknown custom layer kind {name!r}; registered: {', '.join(sorted(_CUSTOM)) or 'none'}")
    del _CUSTOM[name]


def kind_of(module: Any) -> LayerKind | None:
    """The kind `module` belongs to (a user's kinds first, the most recent first), or None."""
    for kind in (*reversed(_CUSTOM.values()), *_BUILTIN.values()):
        if kind.covers(module):
            return kind
    return None


def get_layer_kind(name: str) -> LayerKind:
    """The kind registered as `name` (latency tables record it per layer)."""
    kind = _CUSTOM.get(name) or _BUILTIN.get(name)
    if kind is None:
        raise ValueError(f"Unknown layer kind {name!r}; available: {', '.join(list_layer_kinds())} (a layer of "
                         "your own is known once taskprune.register_layer has run in this process)")
    return kind


def list_layer_kinds(pattern: str = "*") -> list[str]:
    """Registered kind names matching an fnmatch pattern, sorted."""
    return sorted(n for n in (*_BUILTIN, *_CUSTOM) if fnmatch.fnmatchcase(n, pattern))


def custom_kinds() -> tuple[LayerKind, ...]:
    """The kinds registered with `register_layer`, which torch-pruning cannot prune without help."""
    return tuple(_CUSTOM.values())
