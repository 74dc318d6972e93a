"""Evaluation: accuracy, pass@k and maj@k on held-out problems and benchmarks."""

from itero.evaluation.metrics import pass_at_k

__all__ = ["pass_at_k"]
