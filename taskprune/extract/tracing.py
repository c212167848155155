"""Tracing a model into a `torch.fx` graph that keeps its modules, even when its forward checks shapes or unpacks
tensors.

`torch.fx.symbolic_trace` stops at Python control flow on traced values (`if x.shape[-1] % 32:`) and at unpacking
(`a, b = x.chunk(2, 1)`). `trace` runs the example inputs alongside the symbolic trace, so such a condition takes the
branch it took on the example and an unpacking gets the length it had: the result is exact for every input that
takes the same path (the same shape checks passing, the same number of chunks). Control flow on tensor *values*
(`if x.sum() > 0:`) is specialised the same way; `trace` cannot tell the two apart, so keep value-dependent
branches out of a model you extract from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import fx, nn

from .._runtime import preserved_modes

__all__ = ["TraceFailure", "trace"]


class TraceFailure(RuntimeError):
    """`torch.fx` could not trace the model; the message names the call that stopped it."""


_ORIGINAL_CALL, _ORIGINAL_GETATTR = nn.Module.__call__, nn.Module.__getattr__  # before any trace patches them


class _ConcreteProxy(fx.Proxy):
    """A proxy whose len() is its value's on the example inputs (fx refuses len() of a proxy)."""

    def __len__(self) -> int:
        tracer = self.tracer
        if not isinstance(tracer, _ConcreteTracer):
            raise TypeError("a concrete proxy outside its tracer")
        return len(tracer._value(self.node))


class _ConcreteTracer(fx.Tracer):
    """A tracer that can evaluate any node it made on the example inputs, for branches and unpacking."""

    def __init__(self, example: Mapping[str, Any]) -> None:
        super().__init__()
        self.record_stack_traces = True  # to name the line of a branch on values
        self.example = dict(example)
        self.values: dict[fx.Node, Any] = {}

    def _value(self, node: fx.Node) -> Any:
        """`node`'s value on the example inputs: every node up to it evaluated once, in graph order."""
        # while it traces, fx patches Module.__call__ and __getattr__ to record calls and parameter reads;
        # evaluating on real tensors needs the originals back
        patched = (nn.Module.__call__, nn.Module.__getattr__)
        nn.Module.__call__, nn.Module.__getattr__ = _ORIGINAL_CALL, _ORIGINAL_GETATTR  # type: ignore[method-assign]
        try:
            with torch.no_grad():
                for current in self.graph.nodes:
                    if current not in self.values:
                        self.values[current] = self._evaluate(current)
                    if current is node:
                        break
        finally:
            nn.Module.__call__, nn.Module.__getattr__ = patched  # type: ignore[method-assign]
        return self.values[node]

    def _evaluate(self, node: fx.Node) -> Any:
        args = fx.node.map_arg(node.args, self.values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.values.__getitem__)
        if node.op == "placeholder":
            return self.example.get(str(node.target))
        if node.op == "get_attr":
            value: Any = self.root
            for part in str(node.target).split("."):
                value = getattr(value, part)
            return value
        if node.op == "call_module":
            return self.root.get_submodule(str(node.target))(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        if node.op == "output":
            return None
        return node.target(*args, **kwargs)  # type: ignore[operator]

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ConcreteProxy(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        if _reads_values(obj.node):
            raise TraceFailure(f"the forward branches on tensor values ({_where(obj.node)}), so no single graph "
                               "gives the model's outputs for every input")
        return bool(self._value(obj.node))

    def iter(self, obj: fx.Proxy) -> Iterator[Any]:
        proxy: Any = obj
        return iter([proxy[i] for i in range(len(self._value(obj.node)))])

    def keys(self, obj: fx.Proxy) -> Any:
        return list(self._value(obj.node).keys())


_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda", "layout"}
_SHAPE_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}


def _reads_values(node: fx.Node) -> bool:
    """Whether `node` depends on the values of a tensor, not only on shapes, dtypes and constants."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.op == "call_method" and current.target in _SHAPE_METHODS:
            continue
        if current.op == "call_function" and current.target is getattr and current.args[1] in _SHAPE_ATTRIBUTES:
            continue
        if current.op in ("placeholder", "get_attr", "call_module"):
            return True
        stack.extend(current.all_input_nodes)
    return False


def _where(node: fx.Node) -> str:
    """The user's line that made `node`: the last frame of its stack trace outside torch."""
    lines = [line.strip() for line in (node.stack_trace or "").splitlines()]
    frames = [(line, lines[i + 1] if i + 1 < len(lines) else "") for i, line in enumerate(lines)
              if line.startswith("File ") and "/torch/" not in line]
    return ": ".join(frames[-1]) if frames else str(node.format_node())


def _arguments(model: nn.Module, example_inputs: Any) -> dict[str, Any]:
    """The example inputs by the forward's parameter names (what the tracer's placeholders are called)."""
    import inspect

    names = [p.name for p in inspect.signature(model.forward).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if isinstance(example_inputs, Mapping):
        return dict(example_inputs)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    return dict(zip(names, args, strict=False))


def trace(model: nn.Module, example_inputs: Any) -> fx.GraphModule:
    """A `GraphModule` of `model` whose modules keep their qualified names (layers are `call_module` nodes).

    Raises:
        TraceFailure: fx cannot follow the forward; the message names the call and the reason.
    """
    tracer = _ConcreteTracer(_arguments(model, example_inputs))
    with preserved_modes(model, eval=True):
        try:
            graph = tracer.trace(model)
        except Exception as error:  # fx raises many kinds; the message is what the user needs
            raise TraceFailure(f"torch.fx stopped tracing {type(model).__name__}: {type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else ''}") from error
    return fx.GraphModule(model, graph, class_name=f"{type(model).__name__}Extracted")
