"""What a model costs, measured once per `prune` call: parameters and MACs, per layer and in all.

MACs come from torch-pruning's per-layer formulas, counted by two process-wide hooks during a forward the caller
runs anyway (`counting`), without copying the model. Parameter-free layers (activations, pooling, upsampling)
shrink with the
channels of the layer that produced their input, so their MACs are charged to a per-channel parameter of that layer
(a BatchNorm's weight, a conv's bias); the exact cost model prices that parameter accordingly.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch_pruning.utils import op_counter

from .._runtime import preserved_modes
from ..layers import kind_of
from ..tasks import call_model, flatten_outputs

__all__ = ["MacsCount", "ModelProfile", "activation_macs", "count_macs", "count_params", "counting", "layer_macs",
           "module_macs", "profile_model"]


@dataclass(frozen=True)
class ModelProfile:
    """A model's costs on its example inputs, measured once and handed to every stage that needs them.

    Attributes:
        params: parameter elements.
        macs: MACs of one forward.
        shapes: parameter name -> shape.
        layer_macs: module name -> MACs, for modules with parameters of their own.
        own_params: module name -> parameter elements of its own.
        activation_macs: parameter name -> MACs of the parameter-free layers charged to it.
    """

    params: int
    macs: int
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    layer_macs: dict[str, float] = field(default_factory=dict)
    own_params: dict[str, int] = field(default_factory=dict)
    activation_macs: dict[str, float] = field(default_factory=dict)

    def macs_rates(self) -> dict[str, float]:
        """Parameter name -> MACs per element: its layer's MACs spread over the layer's own parameters, plus the
        parameter-free MACs charged to it (what the exact cost model of target="macs" multiplies sizes by)."""
        rates = {}
        for param, shape in self.shapes.items():
            layer = param.rpartition(".")[0]
            rates[param] = self.layer_macs.get(layer, 0.0) / max(self.own_params.get(layer, 1), 1)
            extra = self.activation_macs.get(param)
            if extra:
                rates[param] += extra / max(_numel(shape), 1)
        return rates


def _registered_formulas(model: nn.Module) -> dict[type, Any]:
    """torch-pruning-style MACs formulas for the classes in `model` whose registered kind counts its own MACs."""
    formulas = {}
    for module in model.modules():
        kind = kind_of(module)
        if kind is not None and kind.macs is not None:
            formulas[type(module)] = _formula(kind.macs)
    return formulas


def _formula(macs: Any) -> Any:
    def add(module: nn.Module, inputs: Any, output: Any) -> None:
        module.__dict__["__flops__"] += int(macs(module, inputs, output))

    return add


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for side in shape:
        total *= side
    return total


def profile_model(model: nn.Module, example_inputs: Any) -> ModelProfile:
    """Count `model`'s costs on `example_inputs` in one forward (in eval mode; the caller's modes come back)."""
    with counting(model, example_inputs) as count, torch.no_grad(), preserved_modes(model, eval=True):
        call_model(model, example_inputs)
    return count.profile()


class MacsCount:
    """What one forward of `model` cost, counted by `counting` with torch-pruning's per-layer formulas.

    The count is of the last complete top-level call of `model` inside the `counting` block (a call that failed
    and was retried another way is not added in).
    """

    def __init__(self, model: nn.Module, example_inputs: Any) -> None:
        self.model = model
        leaves = flatten_outputs(example_inputs)
        self._layer_batch = max(1, int(leaves[0].shape[0])) if leaves and leaves[0].dim() else 1
        self._formulas = {**op_counter.MODULES_MAPPING, **op_counter.CUSTOM_MODULES_MAPPING,
                          **_registered_formulas(model)}
        self._leaves = {m for m in model.modules() if not any(True for _ in m.children())}
        self._members = set(model.modules())
        self._flops: dict[nn.Module, float] = {}
        self._names = {m: n for n, m in model.named_modules()}
        self._producers: dict[int, tuple[weakref.ref, str]] = {}
        self._charges: list[tuple[nn.Module, str]] = []  # (parameter-free leaf, the parameter it is charged to)
        self._batch = 1
        self.uncounted: dict[str, str] = {}  # layer name -> why its MACs formula could not read its call

    def _enter(self, module: nn.Module, _inputs: Any) -> None:
        if module is self.model:  # a new top-level call: start again
            self._flops, self._charges, self._producers = {}, [], {}

    def _leave(self, module: nn.Module, inputs: Any, keywords: dict[str, Any], output: Any) -> None:
        if module not in self._members:
            return
        flops: Any = 0
        formula = self._formulas.get(type(module))
        if formula is not None:
            flops = self._apply_formula(formula, module, _as_positional(module, inputs, keywords), output)
            self._flops[module] = self._flops.get(module, 0) + flops
        if module in self._leaves:
            self._follow_channels(module, inputs, output, flops)
        if module is self.model:
            self._batch = len(inputs[0]) if inputs else 1  # torch-pruning's batch counter

    def _apply_formula(self, formula: Any, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
        """torch-pruning's MACs of one call of `module`. A formula that cannot read the call counts nothing and
        is named in `uncounted`: counting runs inside the caller's forward, which must go on as a plain call."""
        state = module.__dict__
        saved = state.pop("__flops__", None)
        state["__flops__"] = 0  # what torch-pruning's formulas add to
        try:
            formula(module, inputs, output)
            return state["__flops__"]
        except Exception as error:  # a formula's failure is the count's, never the model's
            self.uncounted.setdefault(self._names.get(module, type(module).__name__),
                                      f"{type(error).__name__}: {error}")
            return 0
        finally:
            del state["__flops__"]
            if saved is not None:
                state["__flops__"] = saved

    def _follow_channels(self, module: nn.Module, inputs: Any, output: Any, flops: float) -> None:
        """Which per-channel parameter each leaf's output shrinks with. Tensors are matched by identity, checked
        through a weak reference: an id alone is reused once its tensor is freed, and matched a stranger."""
        per_channel = _per_channel_parameter(module)
        if per_channel is not None and isinstance(output, torch.Tensor):
            self._producers[id(output)] = (weakref.ref(output), f"{self._names[module]}.{per_channel}")
        elif flops and inputs and isinstance(inputs[0], torch.Tensor) \
                and not any(True for _ in module.parameters(recurse=False)):
            found = self._producers.get(id(inputs[0]))
            if found is not None and found[0]() is inputs[0]:
                source = found[1]
                self._charges.append((module, source))
                if isinstance(output, torch.Tensor):  # an activation keeps the channels it was given
                    self._producers[id(output)] = (weakref.ref(output), source)

    def _total(self, module: nn.Module, per_module: dict[nn.Module, float]) -> float:
        """torch-pruning's sum: a counted module's own MACs, else the sum of its children's."""
        value = self._flops.get(module, 0) if type(module) in self._formulas else \
            sum(self._total(child, per_module) for child in module.children())
        per_module[module] = value
        return value

    def per_module(self) -> tuple[int, dict[nn.Module, float]]:
        """(MACs of the forward, MACs per module), both per sample (torch-pruning divides its total by the batch
        size but not its per-module counts: with a batch of two, the layers summed to twice the model)."""
        per_module: dict[nn.Module, float] = {}
        total = self._total(self.model, per_module) / max(self._batch, 1)
        return int(total), {m: float(v) / self._layer_batch for m, v in per_module.items() if v}

    @property
    def macs(self) -> int:
        """MACs of one forward, per sample."""
        return self.per_module()[0]

    def profile(self) -> ModelProfile:
        """The `ModelProfile` of the counted forward."""
        total, per_module = self.per_module()
        model, names = self.model, self._names
        own = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in model.named_modules()}
        return ModelProfile(
            params=count_params(model), macs=total,
            shapes={name: tuple(p.shape) for name, p in model.named_parameters()},
            layer_macs={names[m]: v for m, v in per_module.items() if m in names and own.get(names[m])},
            own_params={n: c for n, c in own.items() if c},
            activation_macs=self._activation_macs(per_module))

    def _activation_macs(self, per_layer: dict[nn.Module, float]) -> dict[str, float]:
        """MACs of parameter-free layers, charged to the per-channel parameter of the layer that produced their
        input (for every call, the layer's MACs over the whole forward)."""
        charged: dict[str, float] = {}
        for module, source in self._charges:
            if per_layer.get(module):
                charged[source] = charged.get(source, 0.0) + float(per_layer[module])
        return charged


@contextmanager
def counting(model: nn.Module, example_inputs: Any) -> Iterator[MacsCount]:
    """Count the MACs of the forward of `model` on `example_inputs` run inside the block (two process-wide hooks,
    no copy of the model), so a forward the caller runs anyway (the first call, the verification) is counted at
    no extra cost."""
    count = MacsCount(model, example_inputs)
    hooks = [register_module_forward_pre_hook(count._enter),
             register_module_forward_hook(count._leave, with_kwargs=True)]
    try:
        yield count
    finally:
        for hook in hooks:
            hook.remove()


def _as_positional(module: nn.Module, inputs: tuple[Any, ...], keywords: dict[str, Any]) -> tuple[Any, ...]:
    """The call's arguments as torch-pruning's formulas read them, positionally: `attn(q, k, value=v)` (DETR's
    encoder layer) becomes (q, k, v), in the order of the parameters of the module's forward."""
    if not keywords:
        return inputs
    try:
        bound = inspect.signature(module.forward).bind(*inputs, **keywords)
    except TypeError:
        return inputs
    positional = []
    for parameter in bound.signature.parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD) \
                or parameter.name not in bound.arguments:
            break
        positional.append(bound.arguments[parameter.name])
    return tuple(positional)


def count_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """MACs of one forward on `example_inputs` (per sample), with torch-pruning's per-layer formulas."""
    return _count(model, example_inputs)[0]


def count_macs_and_params(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """(MACs, parameter elements) of `model` on `example_inputs`."""
    return count_macs(model, example_inputs), count_params(model)


def module_macs(model: nn.Module, example_inputs: Any) -> dict[nn.Module, float]:
    """MACs of every module on one forward (see `layer_macs`)."""
    return _count(model, example_inputs)[1]


def _count(model: nn.Module, example_inputs: Any) -> tuple[int, dict[nn.Module, float]]:
    with counting(model, example_inputs) as count, torch.no_grad(), preserved_modes(model, eval=True):
        call_model(model, example_inputs)
    return count.per_module()


def layer_macs(model: nn.Module, example_inputs: Any) -> dict[str, float]:
    """MACs of every module with parameters of its own, by qualified name."""
    per_layer = module_macs(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: v for m, v in per_layer.items()
            if m in names and any(True for _ in m.parameters(recurse=False))}


def activation_macs(model: nn.Module, example_inputs: Any) -> dict[str, float]:
    """MACs of parameter-free layers (activations, pooling, upsampling), charged to a per-channel parameter of the
    layer that produced their input (a BatchNorm's weight, a conv's bias), since they shrink with its channels.

    Returns parameter name -> MACs; layers whose input no parameterised module produced are left out.
    """
    return profile_model(model, example_inputs).activation_macs


def _per_channel_parameter(module: nn.Module) -> str | None:
    """The name of a parameter of `module` with one element per output channel, if its kind names one."""
    kind = kind_of(module)
    if kind is None or kind.per_channel is None or getattr(module, kind.per_channel, None) is None:
        return None
    return kind.per_channel
