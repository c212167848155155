"""SyntheticDriving: procedural driving scenes with vehicle boxes, a drivable-area mask and a lane-line mask.

Each scene is drawn in numpy from a generator seeded by (seed, index), so item i is the same on every run, in every
worker and on every machine. The camera looks down a road in perspective: a row at depth fraction t (0 at the
horizon, 1 at the bottom) has the road centred at a curved x(t) and half as wide as `t` times the road's width at
the bottom. Lane boundaries sit at fixed lateral road coordinates u in [-1, 1]; vehicles stand in lanes or parked on
the shoulder, scaled by t and drawn far to near so near ones occlude far ones. The drivable mask is the road surface
not hidden by a vehicle; the lane mask is the visible paint of lane lines (dashes are masked where painted only).
Distractors that are not targets: buildings and signs, road arrows, a shoulder of asphalt-like colour, shadows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .scene import Road
from .vehicles import VEHICLE_COLOURS, draw_vehicles

__all__ = ["SyntheticDriving", "render_scene"]

def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Value noise: a coarse random grid bilinearly interpolated to [height, width], values in [0, 1]."""
    coarse = rng.random((int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
    gy = np.arange(height, dtype=np.float32) / cell
    gx = np.arange(width, dtype=np.float32) / cell
    iy, ix = gy.astype(np.int64), gx.astype(np.int64)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    top = coarse[iy][:, ix] * (1 - fx) + coarse[iy][:, ix + 1] * fx
    bottom = coarse[iy + 1][:, ix] * (1 - fx) + coarse[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _box_blur(img: np.ndarray) -> np.ndarray:
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + img.shape[0], dx:dx + img.shape[1]]
    return out / 9


def render_scene(rng: np.random.Generator, height: int, width: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw one scene.

    Args:
        rng: the random generator that decides everything in the scene.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        image [H, W, 3] float32 in [0, 1]; boxes [N, 5] float32 (class 0, x1, y1, x2, y2 in pixels);
        drivable [H, W] bool; lane [H, W] bool.
    """
    img = np.empty((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.34, 0.5))
    dusk = rng.random() < 0.25
    _draw_sky(rng, img, horizon, dusk)
    road = _draw_road(rng, img, horizon)
    drivable = np.zeros((height, width), bool)
    drivable[horizon:] = np.abs(road.u) <= 1
    lane = np.zeros((height, width), bool)
    lane[horizon:] = _draw_lane_lines(rng, img[horizon:], road)
    _draw_poles(rng, img, road)
    boxes = draw_vehicles(rng, img, drivable, lane, road, dusk)
    return _camera(rng, img, horizon, dusk), boxes, drivable, lane


def _draw_sky(rng: np.random.Generator, img: np.ndarray, horizon: int, dusk: bool) -> None:
    """Sky and a skyline of buildings and trees on the horizon (vehicle-coloured boxes as distractors)."""
    h, w = img.shape[:2]
    sky_top = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.6, 1.1) if not dusk else np.array([0.15, 0.1, 0.3])
    sky_low = np.array([0.75, 0.82, 0.9]) * rng.uniform(0.7, 1.1) if not dusk else np.array([0.95, 0.55, 0.3])
    if rng.random() < 0.3:
        sky_top = sky_low = np.full(3, rng.uniform(0.5, 0.85))  # overcast
    ramp = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = sky_top * (1 - ramp) + sky_low * ramp
    for _ in range(rng.integers(2, 12)):
        bx, bw, bh = rng.uniform(-0.1, 1.0) * w, rng.uniform(0.04, 0.25) * w, rng.uniform(0.03, 0.3) * h
        top = max(0, int(horizon - bh))
        colour = VEHICLE_COLOURS[rng.integers(len(VEHICLE_COLOURS))] * rng.uniform(0.5, 1.0)
        if rng.random() < 0.4:
            colour = np.array([0.12, 0.3, 0.1]) * rng.uniform(0.6, 1.4)  # tree line
        img[top:horizon, max(0, int(bx)):max(0, int(bx + bw))] = colour


def _draw_road(rng: np.random.Generator, img: np.ndarray, horizon: int) -> Road:
    """Textured ground (grass, dirt or pavement), then the road surface and its non-drivable shoulder."""
    h, w = img.shape[:2]
    rows = h - horizon
    ground = np.array([[0.25, 0.42, 0.15], [0.5, 0.42, 0.3], [0.45, 0.45, 0.45]])[rng.integers(3)]
    texture = _smooth_noise(rng, rows, w, max(4.0, w / 40))[:, :, None]
    img[horizon:] = ground * (0.75 + 0.5 * texture)
    t = (np.arange(rows, dtype=np.float32) + 0.5) / rows
    vanish = w * rng.uniform(0.35, 0.65)
    centre = vanish + rng.uniform(-0.35, 0.35) * w * t + rng.uniform(-0.6, 0.6) * w * (1 - t) ** 2
    half = t * w * rng.uniform(0.5, 1.1)
    u = (np.arange(w, dtype=np.float32)[None, :] - centre[:, None]) / half[:, None]
    road = Road(horizon, t, centre, half, u, shoulder_width=rng.uniform(0.05, 0.3))
    surface = np.abs(u) <= 1
    shoulder = (np.abs(u) > 1) & (np.abs(u) <= 1 + road.shoulder_width)
    asphalt = rng.uniform(0.22, 0.5)
    patches = _smooth_noise(rng, rows, w, max(3.0, w / 25))
    below = img[horizon:]
    below[shoulder] = (asphalt * rng.uniform(0.8, 1.25) + 0.08 * patches[shoulder, None]) * np.array([1, 0.97, 0.92])
    below[surface] = asphalt + 0.12 * (patches[surface, None] - 0.5)
    return road


def _draw_lane_lines(rng: np.random.Generator, below: np.ndarray, road: Road) -> np.ndarray:
    """Paint lane lines (solid edges; dashed or solid, white or yellow separators) and road arrows on the part of
    the image below the horizon; returns the lane mask there (line coverage above half a pixel)."""
    rows, w = road.u.shape
    road.num_lanes = num_lanes = int(rng.integers(2, 5))
    half, u = road.half[:, None], road.u
    lane_paint = np.zeros((rows, w), np.float32)
    line_width = rng.uniform(0.015, 0.03) * half + 0.3
    z = 1 / road.t
    for k in range(num_lanes + 1):
        edge = k in (0, num_lanes)
        if edge and rng.random() < 0.3:
            continue  # unmarked road edge
        position = -1 + 2 * k / num_lanes + (0.03 if k == 0 else -0.03 if edge else 0)
        alpha = np.clip(line_width / 2 - np.abs(u - position) * half + 0.5, 0, 1)  # anti-aliased coverage
        if not edge and rng.random() < 0.7:
            on = ((z * rng.uniform(1.5, 3.5) + rng.random()) % 1) < rng.uniform(0.3, 0.6)
            alpha *= on[:, None]
        yellow = not edge and k == num_lanes // 2 and rng.random() < 0.5
        paint = np.array([0.9, 0.75, 0.15]) if yellow else np.array([0.92, 0.92, 0.9])
        paint = paint * rng.uniform(0.6, 1.0)  # worn paint
        below[...] = below * (1 - alpha[:, :, None]) + paint * alpha[:, :, None]
        lane_paint = np.maximum(lane_paint, alpha)
    rows_index = np.arange(rows, dtype=np.float32)[:, None]
    for _ in range(rng.integers(0, 3)):  # road arrows: painted, but not lane lines
        row = int(rng.uniform(0.3, 0.95) * rows)
        lane_u = -1 + (2 * rng.integers(num_lanes) + 1) / num_lanes
        arrow = (np.abs(u - lane_u) < 0.25 / num_lanes) & (np.abs(rows_index - row) < 0.08 * rows * road.t[row])
        below[arrow] = 0.85
    return lane_paint > 0.5


def _draw_poles(rng: np.random.Generator, img: np.ndarray, road: Road) -> None:
    """Roadside poles with signs: thin and vehicle-coloured distractors."""
    rows = len(road.t)
    for _ in range(rng.integers(0, 5)):
        row = int(rng.uniform(0.1, 0.9) * rows)
        side = rng.choice([-1.0, 1.0]) * (1 + road.shoulder_width + rng.uniform(0.05, 0.3))
        px, size = road.centre[row] + side * road.half[row], max(1.0, 0.03 * road.half[row])
        bottom = road.horizon + row
        y_top = int(bottom - 12 * size)
        img[max(0, y_top):bottom, max(0, int(px - size / 2)):max(0, int(px + size / 2) + 1)] = 0.35
        sign = VEHICLE_COLOURS[rng.integers(len(VEHICLE_COLOURS))]
        img[max(0, y_top):max(0, int(y_top + 3 * size)), max(0, int(px - 2 * size)):max(0, int(px + 2 * size))] = sign


def _camera(rng: np.random.Generator, img: np.ndarray, horizon: int, dusk: bool) -> np.ndarray:
    """Cast shadows, gain, tint, gamma, blur and sensor noise: they change the image, never the labels."""
    rows, w = img.shape[0] - horizon, img.shape[1]
    if rng.random() < 0.5:
        shade = _smooth_noise(rng, rows, w, w / rng.uniform(4, 10)) > rng.uniform(0.5, 0.7)
        img[horizon:][shade] *= rng.uniform(0.45, 0.7)
    gain = rng.uniform(0.35, 0.6) if dusk else rng.uniform(0.7, 1.3)
    img *= gain * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.4:
        img = _box_blur(img)
    img += rng.normal(0, rng.uniform(0.005, 0.05), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


class SyntheticDriving(Dataset):
    """A dataset of procedural driving scenes, item i determined by (seed, i) alone.

    Args:
        length: number of scenes.
        size: (height, width) in pixels; multiples of 32 suit DrivingNet.
        seed: seed of the whole dataset; different seeds give disjoint-looking scenes (use one for train, another
            for validation).

    Items are dicts: "image" float [3, H, W] in [0, 1]; "boxes" float [N, 5] (class, x1, y1, x2, y2 in pixels,
    class 0 = vehicle); "drivable" long [H, W] in {0, 1}; "lane" long [H, W] in {0, 1}.

    Example:
        >>> data = SyntheticDriving(1000, size=(192, 320), seed=0)
        >>> item = data[0]
        >>> item["image"].shape, item["boxes"].shape[1]
        (torch.Size([3, 192, 320]), 5)
    """

    def __init__(self, length: int, size: tuple[int, int] = (192, 320), seed: int = 0) -> None:
        if not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be a non-negative int, got {length!r}")
        if len(size) != 2 or min(size) < 32:
            raise ValueError(f"size must be (height, width) with both at least 32, got {size!r}")
        self.length = length
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for SyntheticDriving of length {self.length}")
        index %= self.length
        rng = np.random.default_rng([self.seed, index])
        image, boxes, drivable, lane = render_scene(rng, *self.size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "boxes": torch.from_numpy(boxes),
            "drivable": torch.from_numpy(drivable.astype(np.int64)),
            "lane": torch.from_numpy(lane.astype(np.int64)),
        }
