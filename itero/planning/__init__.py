"""Planning a run before it starts: the stage plan, model sizes and GPU memory per device (dry run)."""

from itero.planning.memory import (
    MemoryEstimate,
    ModelRole,
    estimate,
    fits,
    format_memory,
)
from itero.planning.memory_config import estimate_for_config
from itero.planning.plan import StagePlan, format_plan, stage_plan
from itero.planning.shapes import KNOWN_MODELS, ModelShape, resolve_shape

__all__ = [
    "KNOWN_MODELS",
    "MemoryEstimate",
    "ModelRole",
    "ModelShape",
    "StagePlan",
    "estimate",
    "estimate_for_config",
    "fits",
    "format_memory",
    "format_plan",
    "resolve_shape",
    "stage_plan",
]
