"""Keeping Ultralytics off the network.

Ultralytics reads `YOLO_OFFLINE=1` (no online checks) and `YOLO_AUTOINSTALL=0` (no pip installs) when it is
imported, so they must be set before `import ultralytics`. One download remains: every dataset check
(`check_det_dataset`, run by train and val) asks for the label font Arial.ttf and fetches it when it is not in
Ultralytics' settings folder. `offline_fonts` puts a font there first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["offline_fonts"]

_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # the names Ultralytics asks for (ASCII and other class names)


def offline_fonts() -> list[Path]:
    """Copy matplotlib's DejaVu Sans to Ultralytics' settings folder under the font names it asks for, unless a
    font of that name is there already; returns the files in place. Ultralytics draws its label text with it.

    Example:
        >>> import os; os.environ["YOLO_OFFLINE"] = "1"   # before ultralytics is imported
        >>> from taskprune.integrations import ultralytics as tpu
        >>> tpu.offline_fonts()
    """
    import matplotlib
    from ultralytics.utils import USER_CONFIG_DIR

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    placed = []
    for name in _FONTS:
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        placed.append(target)
    return placed
