"""Layers of the driving network: Conv-BN-SiLU, CSP bottleneck blocks (C3) and SPPF, as in YOLOv5 and YOLOP."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNAct", "Bottleneck", "C3", "SPPF"]


class ConvBNAct(nn.Sequential):
    """Convolution without bias, BatchNorm, SiLU; 'same' padding for odd kernels.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: kernel size.
        stride: stride; 2 halves the resolution.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class Bottleneck(nn.Module):
    """1x1 then 3x3 convolution, with a residual connection when `shortcut` and the widths agree."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in, c_out, 1)
        self.cv2 = ConvBNAct(c_out, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """Cross-stage-partial block: half the channels go through `depth` bottlenecks, the other half skip them.

    Args:
        c_in: input channels.
        c_out: output channels.
        depth: number of bottlenecks on the processed half.
        shortcut: residual connections inside the bottlenecks (off in the neck, as in YOLOv5).
    """

    def __init__(self, c_in: int, c_out: int, depth: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.cv2 = ConvBNAct(c_in, hidden, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut) for _ in range(depth)))
        self.cv3 = ConvBNAct(2 * hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast form: three chained 5x5 max-pools give receptive fields 5, 9 and 13."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1)
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), dim=1))
