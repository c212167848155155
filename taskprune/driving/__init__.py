"""The reference example: a YOLOP-class driving network, its data, losses, tasks and metrics.

`import taskprune` does not import this package; import it as `from taskprune import driving`.

Example:
    >>> from taskprune import driving
    >>> model = driving.DrivingNet(size="s")
    >>> data = driving.SyntheticDriving(1000, size=(192, 320), seed=0)
    >>> batches = driving.loader(data, batch_size=16, shuffle=True)
    >>> tasks = driving.driving_tasks()
    >>> metrics = driving.evaluate(model, driving.loader(driving.SyntheticDriving(100, seed=1)))
"""

from .bdd100k import BDD100K as BDD100K
from .losses import detection_loss as detection_loss
from .losses import drivable_loss as drivable_loss
from .losses import lane_loss as lane_loss
from .metrics import delta_m as delta_m
from .metrics import evaluate as evaluate
from .model import DrivingNet as DrivingNet
from .model import DrivingOutput as DrivingOutput
from .noise import SceneRecords as SceneRecords
from .noise import evaluate_scenes as evaluate_scenes
from .pretrained import pretrained as pretrained
from .synthetic import SyntheticDriving as SyntheticDriving
from .tasks import collate as collate
from .tasks import driving_tasks as driving_tasks
from .tasks import loader as loader

__all__ = [
    # model
    "DrivingNet", "DrivingOutput", "pretrained",
    # data
    "SyntheticDriving", "BDD100K", "loader", "collate",
    # tasks and losses
    "driving_tasks", "detection_loss", "drivable_loss", "lane_loss",
    # metrics
    "evaluate", "delta_m", "evaluate_scenes", "SceneRecords",
]
