"""Metrics trackers: the run's metrics, also in TensorBoard, Weights & Biases or MLflow (docs/trackers.md).

``metrics.jsonl`` and each iteration's ``train_steps.jsonl`` stay the record; ``sync_trackers`` copies
what no tracker has yet into the trackers named by ``logging.trackers``, so a resumed run logs nothing twice.
"""

from itero.tracking.trackers.base import Tracker, TrackerError, check_trackers
from itero.tracking.trackers.sync import sync_trackers

__all__ = ["Tracker", "TrackerError", "check_trackers", "sync_trackers"]
