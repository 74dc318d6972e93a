"""The errors a user can fix: the CLI prints their message on one line and exits with 2.

Every error raised for bad input or a failed run that the user can act on derives from
``IteroError`` (and, where it has always been one, from the built-in error it refines, so existing
``except ValueError`` code keeps working). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import math


class IteroError(Exception):
    """An error whose message says what to change; no traceback needed (``--debug`` shows one)."""


class DivergenceError(IteroError, FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter; nothing of that step was saved."""


def check_finite_step(loss: float, grad_norm: float) -> None:
    """Refuse an optimizer step whose loss or gradient norm is NaN or infinite (before it is applied)."""
    for name, value in (("loss", loss), ("gradient norm", grad_norm)):
        if not math.isfinite(value):
            raise DivergenceError(f"non-finite {name} ({value})")


def largest_parameter(parameters) -> float:
    """max |θ| over this process's (local) parameter values: NaN or inf when any is, and no overflow for
    large finite weights (a max, not a sum of squares). A sharded parameter contributes its local shard."""
    import torch  # lazily: the error classes are imported by modules that need no torch

    local = [p.to_local() if hasattr(p, "to_local") else p for p in parameters]
    tensors = [t.detach() for t in local if t.numel()]  # a rank may hold an empty shard
    if not tensors:
        return 0.0
    return float(torch.stack(torch._foreach_norm(tensors, math.inf)).max())


def check_finite_parameters(largest: float) -> None:
    """Refuse parameters an optimizer step made NaN or infinite (``largest``: ``largest_parameter``,
    reduced over ranks when the parameters are sharded)."""
    if not math.isfinite(largest):
        raise DivergenceError("non-finite parameters after the optimizer step")
