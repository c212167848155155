"""Random small multi-task conv networks for property-based tests, described by plain-data specs.

A spec is a dict of ints, strings and lists, so hypothesis prints a failing example that can be pasted back
into `build(spec)`. The network is a chain of blocks over a list of feature maps; blocks may read an earlier
feature map of the same resolution (concats and residual adds across the chain), and one to three heads read
any feature map (so blocks after the last one a head reads are dead branches, which the graph cannot follow).

Block kinds:
    conv      conv (1x1 or 3x3, stride 1 or 2) + optional BatchNorm + ReLU
    residual  x + conv-bn-relu-conv-bn(x)  (same width: an add couples the channels)
    depthwise depthwise 3x3 + BatchNorm + ReLU, then a pointwise conv to a new width
    concat    cat(conv_a(x), conv_b(x))  (two branches of their own widths)
    fuse      cat(x, earlier) or x + conv1x1(earlier) (an earlier map of the same resolution)
Head kinds:
    seg       conv3x3 + ReLU + conv1x1 -> k maps, upsampled to the input size
    det       conv1x1 -> k maps at the feature resolution
    cls       global average pool + linear -> k logits
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

__all__ = ["build", "graph_specs", "RandomConvNet"]

BLOCK_KINDS = ("conv", "residual", "depthwise", "concat", "fuse")
HEAD_KINDS = ("seg", "det", "cls")
OUTPUT_FORMATS = ("dict", "tuple")

widths = st.integers(min_value=3, max_value=24)


@st.composite
def _block(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(BLOCK_KINDS))
    return {"kind": kind, "width": draw(widths), "width_b": draw(widths),
            "kernel": draw(st.sampled_from([1, 3])),
            "stride": draw(st.sampled_from([1, 1, 2])), "bn": draw(st.booleans()),
            "add": draw(st.booleans()), "source": draw(st.integers(0, 10))}


@st.composite
def _head(draw: Any) -> dict[str, Any]:
    return {"kind": draw(st.sampled_from(HEAD_KINDS)), "outputs": draw(st.integers(1, 6)),
            "hidden": draw(widths), "source": draw(st.integers(0, 10))}


@st.composite
def graph_specs(draw: Any) -> dict[str, Any]:
    """A hypothesis strategy of random network specs (see the module docstring)."""
    heads = draw(st.lists(_head(), min_size=1, max_size=3))
    return {
        "in_channels": draw(st.integers(1, 4)),
        "size": [draw(st.integers(16, 32)), draw(st.integers(16, 32))],
        "stem": draw(widths),
        "blocks": draw(st.lists(_block(), min_size=2, max_size=5)),
        "heads": heads,
        "output": ("tensor" if len(heads) == 1 and draw(st.booleans())
                   else draw(st.sampled_from(OUTPUT_FORMATS))),
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, bn: bool = True,
          act: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=not bn)
    layers: list[nn.Module] = [conv]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RandomConvNet(nn.Module):
    """The network a spec describes. `plan` lists, per block, (kind, source feature index) for `forward`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.output_format = spec["output"]
        self.stem = _conv(spec["in_channels"], spec["stem"], 3, 1)
        features = [(spec["stem"], tuple(spec["size"]))]  # (channels, (h, w)) of every feature map
        self.blocks = nn.ModuleList()
        self.plan: list[tuple[str, int]] = []
        for block in spec["blocks"]:
            channels, size = features[-1]
            kind, source = block["kind"], -1
            stride = block["stride"] if min(size) >= 8 else 1
            if kind == "conv":
                module: nn.Module = _conv(channels, block["width"], block["kernel"], stride, bn=block["bn"])
                out = block["width"]
            elif kind == "residual":
                module = nn.Sequential(_conv(channels, channels, 3), _conv(channels, channels, 3, act=False))
                out, stride = channels, 1
            elif kind == "depthwise":
                module = nn.Sequential(_conv(channels, channels, 3, stride, groups=channels),
                                       _conv(channels, block["width"], 1, bn=block["bn"]))
                out = block["width"]
            elif kind == "concat":
                module = nn.ModuleList([_conv(channels, block["width"], block["kernel"], stride),
                                        _conv(channels, block["width_b"], 3, stride, bn=block["bn"])])
                out = block["width"] + block["width_b"]
            else:  # fuse with an earlier map of the same resolution (the previous one when none other)
                same = [i for i, (_, s) in enumerate(features[:-1]) if s == size] or [len(features) - 1]
                source, stride = same[block["source"] % len(same)], 1
                earlier = features[source][0]
                if block["add"]:
                    module, out = _conv(earlier, channels, 1, act=False), channels
                else:
                    module, out = nn.Identity(), channels + earlier
                kind = "fuse_add" if block["add"] else "fuse_cat"
            self.blocks.append(module)
            self.plan.append((kind, source))
            features.append((out, tuple((s - 1) // stride + 1 for s in size)))  # 'same' padding
        self.heads = nn.ModuleList()
        self.head_plan: list[tuple[str, int]] = []
        for head in spec["heads"]:
            source = head["source"] % len(features)
            channels = features[source][0]
            if head["kind"] == "seg":
                module = nn.Sequential(_conv(channels, head["hidden"], 3),
                                       nn.Conv2d(head["hidden"], head["outputs"], 1))
            elif head["kind"] == "det":
                module = nn.Conv2d(channels, head["outputs"], 1)
            else:
                module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(channels, head["outputs"]))
            self.heads.append(module)
            self.head_plan.append((head["kind"], source))

    def forward(self, x: torch.Tensor) -> Any:
        size = x.shape[-2:]
        features = [self.stem(x)]
        for module, (kind, source) in zip(self.blocks, self.plan, strict=True):
            current = features[-1]
            if kind == "residual":
                out = current + module(current)
            elif kind == "concat":
                out = torch.cat([branch(current) for branch in module], dim=1)
            elif kind == "fuse_add":
                out = current + module(features[source])
            elif kind == "fuse_cat":
                out = torch.cat([current, features[source]], dim=1)
            else:
                out = module(current)
            features.append(out)
        outputs = []
        for module, (kind, source) in zip(self.heads, self.head_plan, strict=True):
            out = module(features[source])
            if kind == "seg":
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            outputs.append(out)
        if self.output_format == "tensor":
            return outputs[0]
        if self.output_format == "dict":
            kinds = [kind for kind, _ in self.head_plan]
            return {f"{kind}{i}": out for i, (kind, out) in enumerate(zip(kinds, outputs, strict=True))}
        return tuple(outputs)


def build(spec: dict[str, Any]) -> tuple[nn.Module, torch.Tensor]:
    """`(model, example_input)` for a spec: seeded weights, spread-out BatchNorm statistics, eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec["seed"])
        model = RandomConvNet(spec)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.1)
                    module.running_mean.normal_(0.0, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
        example = torch.randn(1, spec["in_channels"], *spec["size"])
    return model.eval(), example
