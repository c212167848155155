"""Optional integrations with other libraries, each imported only when used.

- `taskprune.integrations.ultralytics`: prune, score, recover and keep Ultralytics YOLO models
  (`pip install taskprune[ultralytics]`).
"""

__all__: list[str] = []
