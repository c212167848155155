"""Draw a grid of SyntheticDriving scenes with their labels and write it as a PNG (no Pillow needed).

Left of each pair: the image with vehicle boxes in green. Right: the same image with the drivable area tinted blue
and lane-line pixels in red, so label and picture can be compared by eye.

    python examples/driving/draw_samples.py --out docs/driving_samples.png --rows 4 --size 192 320
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np

from taskprune.driving import SyntheticDriving


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an [H, W, 3] uint8 array as an 8-bit RGB PNG with zlib, the only compression PNG needs."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))  # filter type 0 on every row

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def draw_boxes(img: np.ndarray, boxes: np.ndarray, colour: tuple[float, float, float]) -> None:
    """Draw 1-pixel rectangle outlines in place."""
    height, width, _ = img.shape
    for _, x1, y1, x2, y2 in boxes:
        c0, c1 = int(np.clip(x1, 0, width - 1)), int(np.clip(x2 - 1, 0, width - 1))
        r0, r1 = int(np.clip(y1, 0, height - 1)), int(np.clip(y2 - 1, 0, height - 1))
        img[r0, c0:c1 + 1] = img[r1, c0:c1 + 1] = colour
        img[r0:r1 + 1, c0] = img[r0:r1 + 1, c1] = colour


def labelled_pair(item: dict) -> np.ndarray:
    image = item["image"].permute(1, 2, 0).numpy()
    left = image.copy()
    draw_boxes(left, item["boxes"].numpy(), (0.0, 1.0, 0.0))
    right = image.copy()
    drivable = item["drivable"].numpy().astype(bool)
    right[drivable] = 0.5 * right[drivable] + 0.5 * np.array([0.1, 0.3, 1.0])
    right[item["lane"].numpy().astype(bool)] = (1.0, 0.0, 0.0)
    gap = np.ones((image.shape[0], 4, 3), np.float32)
    return np.concatenate((left, gap, right), axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/driving_samples.png"))
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=2, help="labelled pairs per row")
    parser.add_argument("--size", type=int, nargs=2, default=(192, 320), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = SyntheticDriving(args.rows * args.cols, size=tuple(args.size), seed=args.seed)
    pairs = [labelled_pair(data[i]) for i in range(len(data))]
    gap_h = np.ones((4, pairs[0].shape[1], 3), np.float32)
    rows = []
    for r in range(args.rows):
        row_pairs = pairs[r * args.cols:(r + 1) * args.cols]
        gap_w = np.ones((pairs[0].shape[0], 8, 3), np.float32)
        rows.append(np.concatenate([x for p in row_pairs for x in (p, gap_w)][:-1], axis=1))
        rows.append(np.concatenate([gap_h] * args.cols + [np.ones((4, 8 * (args.cols - 1), 3))], axis=1))
    grid = np.concatenate(rows[:-1], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, (np.clip(grid, 0, 1) * 255).round().astype(np.uint8))
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
