"""The ``reward`` section of the config: the rule-based math reward, a reward model, or a weighted
sum of reward functions (built-ins or the user's own, ``itero/rewards/functions.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from itero.schema import Section


class RewardFunctionConfig(Section):
    """One term of ``reward.functions`` (itero/rewards/functions.py): a built-in by name, or path/file.py:function."""

    name: str | None = None  # built-in: math, format, model; with path: the name it is logged under
    path: str | None = None
    weight: float = 1.0
    style: Literal["batched", "verl"] = "batched"  # verl: per-sample compute_score(data_source, solution_str, ...)

    @model_validator(mode="after")
    def _name_or_path(self):
        from itero.rewards.functions import BUILTIN_NAMES

        if not self.path and self.name not in BUILTIN_NAMES:
            raise ValueError(
                f"reward function name={self.name!r}: give path: file.py:function, or a built-in name "
                f"({', '.join(BUILTIN_NAMES)})"
            )
        return self


class RewardConfig(Section):
    name: Literal["math", "model"] = "math"  # rule-based math reward, or a trained reward model (itero train-rm)
    # Σ weight · fn over these instead of `name` (docs/extending.md); [] = the reward of `name`
    functions: list[RewardFunctionConfig] = []
    # Online-DPO-R1: 1 / -0.5 / -1; VinePPO: 1 / 0 / 0. With name=model they only grade correctness for the logs.
    correct: float = 1.0
    wrong: float = -0.5  # an answer was extracted but is wrong
    no_answer: float = -1.0  # no extractable final answer (e.g. no \boxed{}, or truncated)
    # name=math: strict reads the \boxed{} answer or an explicit answer marker; lenient also the last
    # expression of an unmarked response (as peers' evaluation graders do; see docs/grading.md)
    extraction: Literal["strict", "lenient"] = "strict"
    # name=model: an AutoModelForSequenceClassification folder; scores normalised by running mean/std, then clamped
    model_path: str | None = None
    normalize: bool = True
    clip: float | None = Field(10.0, gt=0.0)
    batch_size: int = Field(16, gt=0)
    template: str = "{prompt}{response}"  # the text the reward model was trained on

    @model_validator(mode="after")
    def _model_needs_path(self):
        if self.name == "model" and not self.model_path:
            raise ValueError("reward.name=model needs reward.model_path (a folder written by itero train-rm)")
        models = sum(f.name == "model" and not f.path for f in self.functions)
        if self.functions and self.name == "model":
            raise ValueError("reward.functions with reward.name=model: list the reward model as {name: model} there")
        if models > 1 or (models and not self.model_path):
            raise ValueError("reward.functions: one {name: model} at most, and it needs reward.model_path")
        return self

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any):
        presets = {"online-dpo-r1": (1.0, -0.5, -1.0), "vineppo": (1.0, 0.0, 0.0)}
        if isinstance(data, dict) and "preset" in data:
            data = dict(data)
            name = data.pop("preset")
            if name not in presets:
                raise ValueError(f"unknown reward preset {name!r}; choose one of {', '.join(presets)}")
            data = {**dict(zip(("correct", "wrong", "no_answer"), presets[name])), **data}
        return data
