"""A batch of the user's data that does not fit the model is named: which batch, which layer, what that layer was
given and what torch expected, as a wrong `example_inputs` is, in prune's gradient pass, finetune and
prune_within."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskprune
from taskprune.train import FinetuneConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = taskprune.Tasks(losses={"a": lambda out, batch: (out - batch["a"]).pow(2).mean(),
                                "b": lambda out, batch: (out - batch["b"]).pow(2).mean()},
                        inputs=lambda batch: batch["image"])

# batch 1 holds one-channel images where the model's first layer (trunk.0) takes three channels
WRONG_IMAGE = (r"batch 1 .*fails in layer 'trunk\.0' \(Conv2d, given input \[2, 1, 16, 16\]\): RuntimeError: "
               r".*expected input\[2, 1, 16, 16\] to have 3 channels")
# prune knows what the model takes: what that layer is given on example_inputs
WRONG_IMAGE_WITH_EXAMPLE = WRONG_IMAGE.replace(r"\[2, 1, 16, 16\]\)",
                                               r"\[2, 1, 16, 16\], on example_inputs \[1, 3, 16, 16\]\)", 1)


def _batches(channels_of_batch_1: int = 1, lane_of_batch_1: int = 16):
    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(3):
        channels = channels_of_batch_1 if index == 1 else 3
        size = lane_of_batch_1 if index == 1 else 16
        batches.append({"image": torch.randn(2, channels, 16, 16, generator=generator),
                        "a": torch.zeros(2, 6, 16, 16), "b": torch.zeros(2, 2, size, size)})
    return batches


def test_the_example_inputs_message_this_reuses(two_head):
    model, _ = two_head
    with pytest.raises(RuntimeError, match=r"model\(example_inputs\) fails in layer 'trunk\.0' \(Conv2d, given input "
                                           r"\[1, 1, 16, 16\]\)"):
        taskprune.prune(model, torch.randn(1, 1, 16, 16), ratio=0.3, progress=False)


@pytest.mark.parametrize("importance", ["taylor", "conflict_taylor"])
def test_prune_names_the_batch_and_the_layer(two_head, importance):
    model, x = two_head
    with pytest.raises(RuntimeError, match="the model on " + WRONG_IMAGE_WITH_EXAMPLE):
        taskprune.prune(model, x, ratio=0.3, importance=importance, tasks=TASKS, data=_batches(), progress=False)


class _Classifier(nn.Module):
    """A head behind a flatten: an image of another size fails deep inside, at the linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1))
        self.head = nn.Linear(4 * 8 * 8, 5)
        self.box = nn.Linear(4 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = self.features(x).flatten(1)
        return {"cls": self.head(flat), "box": self.box(flat)}


def test_prune_says_what_the_failing_layer_takes_on_the_example_inputs():
    torch.manual_seed(0)
    model = _Classifier().eval()
    tasks = taskprune.Tasks(losses={"cls": lambda out, batch: out.pow(2).mean(),
                                    "box": lambda out, batch: out.pow(2).mean()})
    batches = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 32, 32)]  # batch 1 at twice the size
    with pytest.raises(RuntimeError, match=r"the model on batch 1 of data \(counting from 0\) fails in layer "
                                           r"'head' \(Linear, given input \[2, 1024\], on example_inputs "
                                           r"\[1, 256\]\): RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        taskprune.prune(model, torch.randn(1, 3, 16, 16), ratio=0.3, importance="task_taylor", tasks=tasks,
                        data=batches, progress=False)


def test_prune_names_the_batch_and_task_whose_loss_fails(two_head):
    model, x = two_head
    with pytest.raises(RuntimeError, match=r"the loss of task 'b' fails on batch 1 of data \(counting from 0\): "
                                           r"RuntimeError: The size of tensor"):
        taskprune.prune(model, x, ratio=0.3, importance="taylor", tasks=TASKS, data=_batches(3, lane_of_batch_1=8),
                        progress=False)


def test_finetune_names_the_batch_and_the_layer(two_head):
    model, _ = two_head
    with pytest.raises(RuntimeError, match="finetune's " + WRONG_IMAGE):
        taskprune.finetune(model, TASKS, _batches(), epochs=1, progress=False)


def test_finetune_with_a_teacher_names_the_first_batch(two_head):
    model, _ = two_head
    batches = _batches()
    batches[0], batches[1] = batches[1], batches[0]
    with pytest.raises(RuntimeError, match=r"finetune's batch 0 \(the distiller's example\) fails in layer "
                                           r"'trunk\.0' \(Conv2d, given input \[2, 1, 16, 16\]\)"):
        taskprune.finetune(model, TASKS, batches, epochs=1, teacher=model, progress=False)


@pytest.mark.parametrize(("importance", "max_steps", "message"), [
    ("taylor", 2, "the model on " + WRONG_IMAGE_WITH_EXAMPLE),  # prune's gradient pass meets it first
    ("magnitude", 3, "finetune's " + WRONG_IMAGE),  # magnitude reads no batch: the recovery meets it
])
def test_prune_within_names_the_batch_and_the_layer(two_head, importance, max_steps, message):
    model, x = two_head
    with pytest.raises(RuntimeError, match=message):
        taskprune.prune_within(model, x, tasks=TASKS, data=_batches(), evaluate=lambda m: {"a": 0.0},
                               limits={"a": 1.0}, importance=importance, round_to=None, measure_latency=False,
                               progress=False, recovery=FinetuneConfig(epochs=1, max_steps=max_steps, progress=False))


def test_an_error_outside_the_forward_is_left_as_it_is(two_head):
    model, x = two_head
    tasks = taskprune.Tasks(losses={"a": lambda out, batch: out, "b": lambda out, batch: out.mean()},
                            inputs=lambda batch: batch["image"])
    with pytest.raises(TypeError, match="task 'a' must return a scalar"):
        taskprune.prune(model, x, ratio=0.3, importance="taylor", tasks=tasks, data=_batches(3), progress=False)
