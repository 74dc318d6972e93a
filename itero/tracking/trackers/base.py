"""The one interface every tracker backend implements, and the error for a backend that is not installed."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from itero.errors import IteroError

# the module each backend imports, and the pip package that brings it (the extra has the backend's name)
PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}


class TrackerError(IteroError, ImportError):
    """A tracker named in ``logging.trackers`` whose package is missing."""


class Tracker(Protocol):
    """Where metrics go besides the run directory. ``axis`` names what ``step`` counts: ``iteration``
    (the rows of metrics.jsonl) or ``train_step`` (optimizer steps, counted over the whole run)."""

    def log_config(self, config: dict[str, Any]) -> None: ...

    def log_scalars(self, metrics: dict[str, float], step: int, axis: str = "iteration") -> None: ...

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None: ...

    def flush(self) -> None:
        """Everything logged so far is stored: the caller then records the iteration as logged."""

    def close(self) -> None: ...


def require(kind: str) -> Any:
    """The backend's library, imported now (the core needs none of them); missing: one line naming the extra."""
    module, package = PACKAGES[kind]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrackerError(
            f"logging.trackers has {kind}, but the {package} package is not installed: pip install 'itero[{kind}]'"
        ) from None


def check_trackers(kinds: list[str]) -> None:
    """Fail before any training when a chosen tracker cannot be imported, not after the SFT warm-up."""
    for kind in kinds:
        require(kind)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``: the dotted keys of the config, as overrides name them."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
