"""Base class of every config section (kept apart so algorithm files can define their own configs)."""

from pydantic import BaseModel, ConfigDict

from itero.errors import IteroError


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated, and no number is NaN or
    infinite (``training.lr=.inf`` or ``reward.wrong=.nan`` would run and train nothing sensible)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ConfigError(IteroError, ValueError):
    """A config that cannot run; the message says which key to change and how."""
