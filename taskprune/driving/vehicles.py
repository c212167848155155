"""Vehicles of the synthetic scenes: cars, SUVs, box trucks and buses in ten colours, scaled by depth, drawn far to
near so near ones hide far ones, with contact shadows and tail lights; a box for each one still visible enough."""

from __future__ import annotations

import numpy as np

from .scene import Road

__all__ = ["VEHICLE_COLOURS", "draw_vehicles", "vehicle_parts"]

VEHICLE_COLOURS = np.array([[0.85, 0.85, 0.85], [0.08, 0.08, 0.09], [0.55, 0.56, 0.6], [0.7, 0.1, 0.1],
                             [0.1, 0.2, 0.55], [0.9, 0.9, 0.95], [0.2, 0.35, 0.2], [0.85, 0.65, 0.1],
                             [0.35, 0.25, 0.2], [0.4, 0.42, 0.45]], dtype=np.float32)
# Per vehicle type: (width as a fraction of the lane, height / width).
_VEHICLE_SHAPES = ((0.72, 0.82), (0.78, 1.0), (0.88, 1.3), (0.95, 1.25))


def vehicle_parts(kind: int, ly: np.ndarray, lx: np.ndarray) -> list[tuple[np.ndarray, str]]:
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


def draw_vehicles(rng: np.random.Generator, img: np.ndarray, drivable: np.ndarray, lane: np.ndarray,
                   road: Road, dusk: bool) -> np.ndarray:
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
        colour = VEHICLE_COLOURS[rng.integers(len(VEHICLE_COLOURS))] * rng.uniform(0.8, 1.1)
        role_colour = {"body": colour, "cabin": colour * 0.9, "window": np.array([0.08, 0.1, 0.14]),
                       "plate": np.array([0.85, 0.85, 0.75]), "wheel": np.array([0.04, 0.04, 0.04]),
                       "light": np.array([1.0, 0.25, 0.2]) * (1.6 if dusk else 0.75)}
        visible = np.zeros(patch.shape[:2], bool)
        for part, role in vehicle_parts(kind, ly, lx):
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
