"""prune(): budgets, protection, the caller's model, determinism, errors."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from state_checks import snapshot, unchanged
from torch import nn

import taskprune


@pytest.mark.parametrize("target", ["params", "macs", "channels"])
@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_budget_met_and_outputs_kept(two_head, target, ratio):
    model, x = two_head
    before = snapshot(model)
    result = taskprune.prune(model, x, ratio=ratio, target=target, progress=False)
    assert abs(result.report.reached - ratio) <= 0.01
    expected = {k: v.shape for k, v in model(x).items()}
    assert {k: v.shape for k, v in result.model(x).items()} == expected
    assert unchanged(model, before)
    if target == "params":
        params = sum(p.numel() for p in result.model.parameters())
        assert abs(1 - params / sum(p.numel() for p in model.parameters()) - ratio) <= 0.01


def test_output_layers_protected_and_reported(two_head):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.5, progress=False)
    assert result.report.protected_outputs == ["a.2", "b.2"]
    assert result.model.a[2].out_channels == 6 and result.model.b[2].out_channels == 2


def test_inplace_prunes_the_callers_modules(two_head):
    model, x = two_head
    head = model.a[0]
    result = taskprune.prune(model, x, ratio=0.4, inplace=True, progress=False)
    assert result.model is model
    assert model.a[0] is head
    assert sum(p.numel() for p in model.parameters()) == result.report.params_after
    assert model(x)["a"].shape == (1, 6, 16, 16)


def test_channel_map_lists_kept_original_indices(two_head):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.4, progress=False)
    for name, kept in result.channel_map.items():
        layer = dict(result.model.named_modules())[name]
        count = getattr(layer, "out_channels", None) or getattr(layer, "num_features", None)
        assert len(kept) == count
        assert kept == sorted(kept) and len(set(kept)) == len(kept)
    pruned_conv = result.model.trunk[3]
    original = model.trunk[3]
    kept = result.channel_map["trunk.3"]
    in_kept = result.channel_map.get("trunk.0", list(range(16)))
    assert torch.equal(pruned_conv.weight, original.weight[kept][:, in_kept])


def test_same_seed_same_plan_and_random_depends_on_seed(two_head):
    model, x = two_head
    first = taskprune.prune(model, x, ratio=0.4, importance="random", seed=3, progress=False)
    again = taskprune.prune(model, x, ratio=0.4, importance="random", seed=3, progress=False)
    other = taskprune.prune(model, x, ratio=0.4, importance="random", seed=4, progress=False)
    assert first.channel_map == again.channel_map
    assert first.channel_map != other.channel_map


def test_round_to_and_max_layer_ratio(two_head):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.3, round_to=4, max_layer_ratio=0.5, progress=False)
    for group in result.report.groups:
        if group.after != group.before:
            assert group.after % 4 == 0, group
            assert group.after >= math.ceil(group.before * 0.5), group


def test_protect_pattern_keeps_layer(two_head):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.3, protect=("trunk.3",), progress=False)
    assert result.model.trunk[3].out_channels == 32


def test_group_attribution_in_report(two_head):
    model, x = two_head
    report = taskprune.prune(model, x, ratio=0.3, progress=False).report
    serves = {g.layer: g.serves for g in report.groups}
    assert serves == {"trunk.0": "shared", "trunk.3": "shared", "a.0": "a", "b.0": "b"}
    assert report.task_attribution == {"a": 1, "b": 1, "shared": 2}
    assert '"criterion": "magnitude"' in report.to_json()
    assert "| trunk.3 |" in report.to_markdown() and "trunk.3" in str(report)


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, "0.3", True])
def test_bad_ratio(two_head, ratio):
    model, x = two_head
    with pytest.raises(ValueError, match="ratio"):
        taskprune.prune(model, x, ratio=ratio)


def test_unknown_criterion_lists_choices(two_head):
    model, x = two_head
    with pytest.raises(ValueError, match="Unknown criterion 'tylor'; available: .*taylor"):
        taskprune.prune(model, x, ratio=0.3, importance="tylor")


def test_unknown_target(two_head):
    model, x = two_head
    with pytest.raises(ValueError, match="Unknown target 'flops'; available: params, macs, channels"):
        taskprune.prune(model, x, ratio=0.3, target="flops")


@pytest.mark.parametrize("criterion", ["taylor", "task_taylor", "conflict_taylor"])
def test_gradient_criterion_needs_tasks_and_data(two_head, two_head_tasks, criterion):
    model, x = two_head
    with pytest.raises(ValueError, match="needs gradients"):
        taskprune.prune(model, x, ratio=0.3, importance=criterion)
    with pytest.raises(ValueError, match="needs gradients"):
        taskprune.prune(model, x, ratio=0.3, importance=criterion, tasks=two_head_tasks)


def test_empty_loader(two_head, two_head_tasks):
    model, x = two_head
    before = snapshot(model)
    with pytest.raises(ValueError, match="no batch"):
        taskprune.prune(model, x, ratio=0.3, importance="taylor", tasks=two_head_tasks, data=[], progress=False)
    assert unchanged(model, before)


def test_nan_loss_names_the_task(two_head, batches):
    model, x = two_head
    tasks = taskprune.Tasks(outputs={"a": lambda o: o["a"], "b": lambda o: o["b"]},
                            losses={"a": lambda o, b: o.mean(), "b": lambda o, b: o.mean() * float("nan")})
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="task 'b' is not finite"):
        taskprune.prune(model, x, ratio=0.3, importance="task_taylor", tasks=tasks, data=batches, progress=False)
    assert unchanged(model, before)


def test_protect_pattern_matching_nothing_is_an_error(two_head):
    model, x = two_head
    with pytest.raises(ValueError, match="protect pattern 'heads.*' matches no module"):
        taskprune.prune(model, x, ratio=0.3, protect=["heads.*"])


def test_failing_forward_names_the_layer():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x))

    model = Broken()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="model\\(example_inputs\\) fails in layer 'fc'"):
        taskprune.prune(model, torch.randn(1, 3, 8, 8), ratio=0.3, inplace=True)
    assert unchanged(model, before)


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        taskprune.prune(lambda x: x, torch.randn(1), ratio=0.3)  # type: ignore[arg-type]


def test_ratio_out_of_reach_explains(two_head):
    model, x = two_head
    with pytest.raises(ValueError, match="max_layer_ratio=0.1"):
        taskprune.prune(model, x, ratio=0.6, max_layer_ratio=0.1, progress=False)


def test_import_is_lean():
    code = ("import sys, taskprune; heavy = [m for m in ('rich', 'networkx', 'matplotlib', 'taskprune.driving') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


class ListInputDetector(torch.nn.Module):
    """Takes a list of [3, H, W] images, as torchvision detectors do, and returns a box map and a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                         torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU())
        self.boxes = torch.nn.Conv2d(32, 5, 1)
        self.mask = torch.nn.Conv2d(32, 2, 1)

    def forward(self, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        features = self.trunk(torch.stack(images))
        return {"boxes": self.boxes(features), "mask": self.mask(features)}


def test_a_list_the_model_takes_as_one_argument_is_passed_as_one(tmp_path):
    torch.manual_seed(0)
    model = ListInputDetector().eval()
    images = [torch.randn(3, 16, 16), torch.randn(3, 16, 16)]
    result = taskprune.prune(model, images, ratio=0.3, round_to=None, progress=False)
    assert "one argument" in result.report.call
    assert abs(result.report.reached - 0.3) <= 0.01
    assert result.model(images)["boxes"].shape == model(images)["boxes"].shape
    taskprune.save(result, tmp_path / "list.pt")  # the shapes of a list argument are recorded too
    loaded = taskprune.load(tmp_path / "list.pt", ListInputDetector().eval())
    assert torch.equal(loaded(images)["mask"], result.model(images)["mask"])


def test_a_list_of_positional_arguments_is_still_positional(two_head):
    model, x = two_head
    result = taskprune.prune(model, [x], ratio=0.3, round_to=None, progress=False)
    assert result.report.call == "model(*example_inputs)"


def test_inputs_no_call_accepts_name_both_attempts():
    model = ListInputDetector().eval()
    with pytest.raises(RuntimeError, match="also tried as one argument"):
        taskprune.prune(model, [torch.randn(3, 16, 16), torch.randn(4, 16, 16)], ratio=0.3, round_to=None,
                        progress=False)
