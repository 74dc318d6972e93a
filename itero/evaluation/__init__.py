"""Evaluation: accuracy, pass@k and maj@k on held-out problems and math benchmarks, KL to the base model.

Kept light to import (the config validates benchmark names and templates): the runner, which needs
torch and the generator, is ``itero.evaluation.runner`` (``evaluate_benchmarks``), the CLIs are
``itero.evaluation.cli`` (``itero eval``) and ``itero.evaluation.kl`` (``itero kl``).
"""

from itero.evaluation.metrics import maj_at_k, majority_index, pass_at_k

__all__ = ["maj_at_k", "majority_index", "pass_at_k"]
