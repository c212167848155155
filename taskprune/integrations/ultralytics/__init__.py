"""Ultralytics YOLO, end to end: prune, score with its own loss, recover with its own trainer, keep, export.

Needs `pip install taskprune[ultralytics]`. Detection, segmentation, pose and oriented-box models (YOLOv8, YOLOv10,
YOLO11, YOLO12, ...) built by Ultralytics, from a YAML or a checkpoint:

    >>> from ultralytics import YOLO
    >>> from taskprune.integrations import ultralytics as tpu
    >>> dense = YOLO("yolo11n-seg.pt")
    >>> pruned = tpu.prune(dense, ratio=0.3, imgsz=640, data="my.yaml", importance="task_taylor")
    >>> tpu.train(pruned.yolo, data="my.yaml", epochs=30, teacher=dense, channel_map=pruned.channel_map)
    >>> pruned.yolo.val(data="my.yaml"); pruned.yolo.save("pruned.pt"); YOLO("pruned.pt")
    >>> pruned.yolo.export(format="onnx")

Ultralytics saves the whole network in its checkpoints, so `YOLO("pruned.pt")` loads the pruned architecture;
`train` keeps Ultralytics' trainer from rebuilding the network from its YAML. Where nothing may be downloaded, set
`YOLO_OFFLINE=1` and `YOLO_AUTOINSTALL=0` before importing ultralytics and call `offline_fonts()`
(docs/ultralytics.md).
"""

from __future__ import annotations

try:
    import ultralytics as _ultralytics  # noqa: F401
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError("taskprune.integrations.ultralytics needs Ultralytics: pip install taskprune[ultralytics]"
                      ) from error

from .data import loader as loader
from .data import write_driving_dataset as write_driving_dataset
from .measure import latency_ratio as latency_ratio
from .offline import offline_fonts as offline_fonts
from .outputs import HeadOutputs as HeadOutputs
from .outputs import network as network
from .pruning import YoloPruneResult as YoloPruneResult
from .pruning import prune as prune
from .pruning import with_network as with_network
from .tasks import YoloTasks as YoloTasks
from .tasks import hyperparameters as hyperparameters
from .tasks import yolo_tasks as yolo_tasks
from .training import train as train

__all__ = [
    # pruning and its tasks
    "prune", "YoloPruneResult", "yolo_tasks", "YoloTasks", "HeadOutputs", "network", "hyperparameters",
    # recovery and measuring
    "train", "latency_ratio", "with_network",
    # data, and staying offline
    "loader", "write_driving_dataset", "offline_fonts",
]
