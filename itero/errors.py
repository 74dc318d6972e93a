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


def check_finite_parameters(parameters) -> None:
    """Refuse parameters an optimizer step made NaN or infinite (one fused norm over all of them)."""
    import torch  # lazily: the error classes are imported by modules that need no torch

    tensors = [p.detach() for p in parameters]
    # the max-abs norm: NaN and ±inf show through, large finite weights do not overflow as squares would
    if tensors and not math.isfinite(float(torch.nn.utils.get_total_norm(tensors, norm_type=math.inf))):
        raise DivergenceError("non-finite parameters after the optimizer step")
