"""The geometry of a synthetic scene that its renderers share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Road"]


@dataclass
class Road:
    """Road geometry per row below the horizon: depth t, centre x, half-width; u = lateral coordinate per pixel."""

    horizon: int
    t: np.ndarray
    centre: np.ndarray
    half: np.ndarray
    u: np.ndarray
    shoulder_width: float
    num_lanes: int = 0
