"""Head-agnostic feature distillation from the unpruned teacher into the pruned student.

`FeatureDistiller` hooks the same named layers in both models, runs the teacher in eval mode under `no_grad` and
the student normally, aligns the student's channels to the teacher's (by selection through `channel_map`, or with a
trained 1x1 adapter initialised to that selection) and returns `alpha * sum over layers of the feature loss` with
the student's outputs, so it drops into any training loop. Losses and alignment helpers: `taskprune.distill.losses`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .._runtime import preserved_modes
from ..tasks import MultiTaskAdapter, call_model
from .config import Distill
from .losses import (
    check_alignment,
    check_channel_map,
    close_matches,
    feature_loss,
    selection_adapter,
)

__all__ = ["FeatureDistiller", "auto_layers"]


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a (Distributed)DataParallel wrapper, whose module names the user knows."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def auto_layers(model: nn.Module, example_inputs: Any, tasks: MultiTaskAdapter | None = None) -> tuple[str, ...]:
    """The shared trunk's outputs: per spatial scale, the last module to run that reaches every task.

    The rule: take the leaf modules whose output reaches all tasks (`graph.module_task_attribution`), run one
    forward (eval mode, no_grad) recording when each runs and its output, keep those whose output is a 4-D feature
    map [N, C, H, W], group them by (H, W), and in each group keep the module that runs last. The result is in
    forward order. Without `tasks`, every output leaf of the model is its own task.

    Raises:
        ValueError: no module reaching every task outputs a 4-D feature map (name the layers instead).
    """
    from ..graph import module_task_attribution

    with torch.enable_grad():  # the dependency graph is traced through autograd, even inside a no_grad loop
        attribution = module_task_attribution(model, example_inputs, tasks)
    all_tasks = frozenset().union(*attribution.values())
    shared = {name for name, reached in attribution.items() if reached and reached == all_tasks}
    last_call: dict[str, tuple[int, tuple[int, ...]]] = {}
    order = itertools.count()

    def record(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            step = next(order)
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                last_call[name] = (step, tuple(output.shape[-2:]))
            else:
                last_call.pop(name, None)

        return hook

    handles = [module.register_forward_hook(record(name))
               for name, module in model.named_modules() if name in shared]
    try:
        with torch.no_grad(), preserved_modes(model, eval=True):
            call_model(model, example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    last_by_scale: dict[tuple[int, ...], tuple[int, str]] = {}
    for name, (step, scale) in last_call.items():
        if scale not in last_by_scale or step > last_by_scale[scale][0]:
            last_by_scale[scale] = (step, name)
    if not last_by_scale:
        raise ValueError(
            f"layers='auto' found no module that reaches every task ({', '.join(sorted(all_tasks))}) and outputs "
            "a 4-D feature map; name the layers: Distill(layers=('backbone.stage3', ...))"
        )
    return tuple(name for _, name in sorted(last_by_scale.values()))


class FeatureDistiller(nn.Module):
    """Distillation loss between hooked teacher and student layers; call it instead of the student.

    `distiller(inputs)` runs the teacher (eval mode, no_grad) and the student on `inputs` (called like
    `tasks.call_model`: a tuple is positional args, a dict keyword args) and returns `(kd_loss, student_outputs)`
    with `kd_loss = alpha * sum over layers of loss(aligned student feature, teacher feature)`.

    Only the adapters are parameters of the distiller (none with align="select"): optimise them with the student.
    The student may be wrapped in DistributedDataParallel (name layers as in the unwrapped model). `remove()`, or
    leaving a `with` block, takes the hooks off both models.

    Args:
        teacher: the unpruned model.
        student: the pruned model (same qualified names, fewer channels).
        distill: the `Distill` config (default `Distill()`).
        channel_map: module name -> the teacher channel indices the student kept (`PruneResult.channel_map`);
            a layer not in the map (or `None`) has the teacher's channels.
        example_inputs: one batch of model inputs; resolves layers="auto", checks every layer's shapes and builds
            the adapters now. Required with align="adapter" so the adapters exist before the optimizer does;
            otherwise layers="auto" is resolved on the first call.
        tasks: the tasks, for layers="auto" (default: every output leaf is a task).

    Raises:
        ValueError: a layer name in neither model (with close matches), a feature shape that does not fit the
            channel map (naming the layer and both shapes), align="adapter" without example_inputs.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, distill: Distill | None = None,
                 channel_map: Mapping[str, Sequence[int]] | None = None, *, example_inputs: Any = None,
                 tasks: MultiTaskAdapter | None = None) -> None:
        super().__init__()
        for arg, value in (("teacher", teacher), ("student", student)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"FeatureDistiller {arg} must be an nn.Module, got {type(value).__name__}")
        distill = Distill() if distill is None else distill
        if not isinstance(distill, Distill):
            raise TypeError(f"distill must be a taskprune.Distill, got {type(distill).__name__}")
        if distill.align == "adapter" and example_inputs is None:
            raise ValueError("align='adapter' needs example_inputs= so the adapters exist before the optimizer does")
        self.distill = distill
        self.tasks = tasks
        # A plain tuple keeps both models out of this module's parameters, state_dict and .to().
        self._models = (teacher, student)
        self._selection = check_channel_map(channel_map)
        self.adapters = nn.ModuleDict()
        self._features: dict[str, dict[str, Any]] = {"teacher": {}, "student": {}}
        self._active: str | None = None
        self._handles: list[Any] = []
        self.layers: tuple[str, ...] | None = None
        if isinstance(distill.layers, tuple):
            self._attach(distill.layers)
        if example_inputs is not None:
            self._setup(example_inputs)

    def _attach(self, layers: tuple[str, ...]) -> None:
        roles = {"student": dict(_unwrap(self._models[1]).named_modules()),
                 "teacher": dict(_unwrap(self._models[0]).named_modules())}
        for role, modules in roles.items():
            for name in layers:
                if name not in modules:
                    raise ValueError(f"layer {name!r} is not a module of the {role}"
                                     f"{close_matches(name, list(modules))}")
        self._handles = [modules[name].register_forward_hook(self._hook(role, name))
                         for role, modules in roles.items() for name in layers]
        self.layers = layers

    def _hook(self, role: str, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._active == role:
                self._features[role][name] = output

        return hook

    @contextmanager
    def _capture(self, role: str) -> Iterator[dict[str, Any]]:
        self._features[role] = {}
        self._active = role
        try:
            yield self._features[role]
        finally:
            self._active = None

    def _setup(self, example_inputs: Any) -> None:
        """Resolve auto layers, check every layer's shapes, build adapters (models in eval mode, no_grad)."""
        teacher, student = self._models
        if self.layers is None:
            self._attach(auto_layers(_unwrap(teacher), example_inputs, self.tasks))
        with torch.no_grad(), preserved_modes(teacher, student, eval=True):
            teacher_features, student_features = self._run(example_inputs, _unwrap(student))[:2]
        if self.distill.align != "adapter":
            return
        for name in self.layers or ():
            s, t = student_features[name], teacher_features[name]
            if s.dim() != 4:
                raise ValueError(f"align='adapter' needs 4-D feature maps; layer {name!r} gives {tuple(s.shape)}")
            adapter = selection_adapter(self._selection.get(name), s.shape[1], t.shape[1]).to(s.device, s.dtype)
            self.adapters[name.replace(".", "/")] = adapter

    def _run(self, inputs: Any, student: nn.Module) -> tuple[dict[str, Any], dict[str, Any], Any]:
        teacher = self._models[0]
        # the teacher runs in eval mode and is given back in the modes its owner set
        with torch.no_grad(), preserved_modes(teacher, eval=True), self._capture("teacher") as teacher_features:
            call_model(teacher, inputs)
        with self._capture("student") as student_features:
            outputs = call_model(student, inputs)
        for name in self.layers or ():
            self._check(name, student_features, teacher_features)
        return teacher_features, student_features, outputs

    def _check(self, name: str, student_features: dict[str, Any], teacher_features: dict[str, Any]) -> None:
        for role, captured in (("student", student_features), ("teacher", teacher_features)):
            if name not in captured:
                raise RuntimeError(f"layer {name!r} did not run in the {role}'s forward")
            if not isinstance(captured[name], torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(captured[name]).__name__} in the {role}, "
                                "not a tensor; name a module that returns one feature map")
        check_alignment(name, student_features[name].shape, teacher_features[name].shape, self._selection)

    def forward(self, inputs: Any) -> tuple[torch.Tensor, Any]:
        """`(alpha * summed feature loss, the student's outputs)` for one batch of model inputs."""
        if self.layers is None:
            self._attach(auto_layers(_unwrap(self._models[0]), inputs, self.tasks))
        elif not self._handles:
            raise RuntimeError("this FeatureDistiller was removed; build a new one")
        teacher_features, student_features, outputs = self._run(inputs, self._models[1])
        total = torch.zeros((), device=next(iter(student_features.values())).device)
        for name in self.layers or ():
            total = total + self._layer_loss(name, student_features[name], teacher_features[name])
        return self.distill.alpha * total, outputs

    def _layer_loss(self, name: str, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.distill.align == "adapter":
            student = self.adapters[name.replace(".", "/")](student)
        elif name in self._selection:
            kept = self._selection[name]
            if kept.device != teacher.device:
                kept = self._selection[name] = kept.to(teacher.device)
            teacher = teacher.index_select(1, kept)
        return feature_loss(self.distill.loss, student, teacher, self.distill.tau)

    def remove(self) -> None:
        """Take the hooks off teacher and student; the distiller is unusable afterwards."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._features = {"teacher": {}, "student": {}}

    def __enter__(self) -> FeatureDistiller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
