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

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["SyntheticDriving", "render_scene"]

_VEHICLE_COLOURS = np.array([[0.85, 0.85, 0.85], [0.08, 0.08, 0.09], [0.55, 0.56, 0.6], [0.7, 0.1, 0.1],
                             [0.1, 0.2, 0.55], [0.9, 0.9, 0.95], [0.2, 0.35, 0.2], [0.85, 0.65, 0.1],
                             [0.35, 0.25, 0.2], [0.4, 0.42, 0.45]], dtype=np.float32)
# Per vehicle type: (width as a fraction of the lane, height / width).
_VEHICLE_SHAPES = ((0.72, 0.82), (0.78, 1.0), (0.88, 1.3), (0.95, 1.25))


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


def _vehicle_parts(kind: int, ly: np.ndarray, lx: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Boolean masks of a vehicle's parts in box-local coordinates (0..1), in drawing order, with a role name."""
    inside = (ly >= 0) & (ly <= 1) & (lx >= 0) & (lx <= 1)
    wheels = inside & (ly >= 0.84) & ((lx < 0.22) | (lx > 0.78))
    lights = inside & (ly >= 0.52) & (ly < 0.62) & (((lx > 0.03) & (lx < 0.17)) | ((lx > 0.83) & (lx < 0.97)))
    if kind <= 1:  # car, SUV: body below, a narrower cabin with a rear window above
        roof = 0.05 if kind == 0 else 0.0
        waist = 0.45 if kind == 0 else 0.42
        inset = 0.06 + 0.14 * np.clip((waist - ly) / (waist - roof), 0, 1) * (1.0 if kind == 0 else 0.5)
        cabin = inside & (ly >= roof) & (ly < waist) & (lx >= inset) & (lx <= 1 - inset)
        window = cabin & (ly >= roof + 0.06) & (ly < waist - 0.04) & (lx >= inset + 0.05) & (lx <= 0.95 - inset)
        body = inside & (ly >= waist) & (ly < 0.88)
        plate = body & (ly >= 0.64) & (ly < 0.74) & (lx > 0.38) & (lx < 0.62)
        return [(body, "body"), (cabin, "cabin"), (window, "window"), (plate, "plate"), (lights, "light"),
                (wheels, "wheel")]
    body = inside & (ly < 0.88)
    if kind == 2:  # box truck: a plain cargo box with a door seam
        seam = body & (np.abs(lx - 0.5) < 0.015)
        return [(body, "body"), (seam, "window"), (lights, "light"), (wheels, "wheel")]
    window = body & (ly > 0.08) & (ly < 0.38) & (lx > 0.06) & (lx < 0.94)  # bus
    return [(body, "body"), (window, "window"), (lights, "light"), (wheels, "wheel")]


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
    boxes = _draw_vehicles(rng, img, drivable, lane, road, dusk)
    return _camera(rng, img, horizon, dusk), boxes, drivable, lane


@dataclass
class _Road:
    """Road geometry per row below the horizon: depth t, centre x, half-width; u = lateral coordinate per pixel."""

    horizon: int
    t: np.ndarray
    centre: np.ndarray
    half: np.ndarray
    u: np.ndarray
    shoulder_width: float
    num_lanes: int = 0


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
        colour = _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))] * rng.uniform(0.5, 1.0)
        if rng.random() < 0.4:
            colour = np.array([0.12, 0.3, 0.1]) * rng.uniform(0.6, 1.4)  # tree line
        img[top:horizon, max(0, int(bx)):max(0, int(bx + bw))] = colour


def _draw_road(rng: np.random.Generator, img: np.ndarray, horizon: int) -> _Road:
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
    road = _Road(horizon, t, centre, half, u, shoulder_width=rng.uniform(0.05, 0.3))
    surface = np.abs(u) <= 1
    shoulder = (np.abs(u) > 1) & (np.abs(u) <= 1 + road.shoulder_width)
    asphalt = rng.uniform(0.22, 0.5)
    patches = _smooth_noise(rng, rows, w, max(3.0, w / 25))
    below = img[horizon:]
    below[shoulder] = (asphalt * rng.uniform(0.8, 1.25) + 0.08 * patches[shoulder, None]) * np.array([1, 0.97, 0.92])
    below[surface] = asphalt + 0.12 * (patches[surface, None] - 0.5)
    return road


def _draw_lane_lines(rng: np.random.Generator, below: np.ndarray, road: _Road) -> np.ndarray:
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


def _draw_poles(rng: np.random.Generator, img: np.ndarray, road: _Road) -> None:
    """Roadside poles with signs: thin and vehicle-coloured distractors."""
    rows = len(road.t)
    for _ in range(rng.integers(0, 5)):
        row = int(rng.uniform(0.1, 0.9) * rows)
        side = rng.choice([-1.0, 1.0]) * (1 + road.shoulder_width + rng.uniform(0.05, 0.3))
        px, size = road.centre[row] + side * road.half[row], max(1.0, 0.03 * road.half[row])
        bottom = road.horizon + row
        y_top = int(bottom - 12 * size)
        img[max(0, y_top):bottom, max(0, int(px - size / 2)):max(0, int(px + size / 2) + 1)] = 0.35
        sign = _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))]
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


def _draw_vehicles(rng: np.random.Generator, img: np.ndarray, drivable: np.ndarray, lane: np.ndarray,
                   road: _Road, dusk: bool) -> np.ndarray:
    """Draw vehicles far to near, clearing masks under them; boxes of those with 25% of their drawn pixels seen."""
    h, w = drivable.shape
    horizon, centre, half, num_lanes = road.horizon, road.centre, road.half, road.num_lanes
    rows = len(centre)
    count = int(rng.integers(0, 13))
    depth = np.sort(rng.uniform(0.05, 0.95, size=count) ** 1.3)  # far first; more far (small) vehicles
    owner = np.zeros((h, w), np.int32)
    placed: list[tuple[int, int, float, float, float, float]] = []
    taken: list[tuple[int, float]] = []
    for index, t in enumerate(depth, start=1):
        row = min(rows - 1, int(t * rows))
        slot = int(rng.integers(-1, num_lanes + 1))  # -1 and num_lanes: parked on a shoulder
        # Two vehicles in one lane need a gap in depth, or a near one would swallow a far one whole.
        if any(s == slot and 0.75 < t / other < 1.33 for s, other in taken):
            continue
        taken.append((slot, t))
        if slot in (-1, num_lanes) and rng.random() < 0.6:
            continue  # shoulders are mostly empty
        if slot in (-1, num_lanes):
            lateral = (1.0 if slot > 0 else -1.0) * (1 + road.shoulder_width * 0.6)
        else:
            lateral = -1 + (2 * slot + 1) / num_lanes + rng.normal(0, 0.15 / num_lanes)
        kind = int(rng.choice(4, p=[0.55, 0.25, 0.12, 0.08]))
        rel_width, aspect = _VEHICLE_SHAPES[kind]
        vw = rel_width * 2 / num_lanes * half[row] * rng.uniform(0.9, 1.1)
        vh = vw * aspect * rng.uniform(0.9, 1.1)
        x_mid, y_bottom = centre[row] + lateral * half[row], horizon + t * rows
        x1, y1, x2, y2 = x_mid - vw / 2, y_bottom - vh, x_mid + vw / 2, y_bottom
        r0, r1 = max(0, int(np.floor(y1))), min(h, int(np.ceil(y2 + 0.06 * vh)))
        c0, c1 = max(0, int(np.floor(x1 - 0.1 * vw))), min(w, int(np.ceil(x2 + 0.1 * vw)))
        if r1 - r0 < 2 or c1 - c0 < 2:
            continue
        ly = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - y1) / vh
        lx = (np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - x1) / vw
        patch = img[r0:r1, c0:c1]
        shadow = ((lx - 0.5) / 0.6) ** 2 + ((ly - 1.0) / 0.07) ** 2 < 1
        patch[shadow] *= 0.45
        colour = _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))] * rng.uniform(0.8, 1.1)
        role_colour = {"body": colour, "cabin": colour * 0.9, "window": np.array([0.08, 0.1, 0.14]),
                       "plate": np.array([0.85, 0.85, 0.75]), "wheel": np.array([0.04, 0.04, 0.04]),
                       "light": np.array([1.0, 0.25, 0.2]) * (1.6 if dusk else 0.75)}
        visible = np.zeros(patch.shape[:2], bool)
        for part, role in _vehicle_parts(kind, ly, lx):
            patch[part] = role_colour[role]
            visible |= part
        owner[r0:r1, c0:c1][visible] = index
        drivable[r0:r1, c0:c1][visible] = False
        lane[r0:r1, c0:c1][visible] = False
        placed.append((index, int(visible.sum()), x1, y1, x2, y2))
    boxes = []
    for index, drawn, x1, y1, x2, y2 in placed:
        # Truncated by the image edge still counts (BDD100K labels it); hidden by nearer vehicles does not.
        r0, r1, c0, c1 = max(0, int(y1)), min(h, int(np.ceil(y2))), max(0, int(x1)), min(w, int(np.ceil(x2)))
        seen = (owner[r0:r1, c0:c1] == index).sum()
        if seen >= 0.25 * max(drawn, 1) and min(y2, h) - max(y1, 0) >= 3 and min(x2, w) - max(x1, 0) >= 2:
            boxes.append((0.0, max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)))
    return np.array(boxes, np.float32).reshape(-1, 5)


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
