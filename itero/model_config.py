"""Sub-sections of the config's ``model`` section that other modules build on: ``model.lora``, read by
the peft code in itero/models/lora.py, lives here so the config tree never imports that code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from itero.schema import Section


class LoraSettings(Section):
    """``model.lora``: rank, scale (alpha / r), dropout on the adapter input, and which linear layers get one."""

    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # "all-linear": every linear layer of the decoder but the lm_head (peft's name); or module names
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
