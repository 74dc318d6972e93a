"""The ``task`` section of the config: the built-in arithmetic task, a JSONL prompt set, or a
``datasets`` dataset with a field mapping and an optional chat template."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from itero.schema import Section


class ArithmeticConfig(Section):
    digits: int = Field(2, ge=1, le=6)
    num_ops: int = Field(2, ge=1, le=6)
    ops: str = "+*"
    fixed_ops: bool = True  # True: the i-th operator is ops[i] (ops="+*" gives a+b*c)
    small_multiplier: bool = True  # right operand of * has one digit
    num_train: int = Field(20000, gt=0)
    num_test: int = Field(200, gt=0)
    seed: int = 0


class JsonlTaskConfig(Section):
    train_path: str | None = None  # JSONL prompt set (e.g. data/gsm8k/train.jsonl) or an hf: dataset spec
    test_path: str | None = None  # None: hold out the first num_test rows of train_path
    num_test: int = Field(200, ge=1)
    prompt_field: str = "problem"
    answer_field: str = "gold_answer"
    solution_field: str | None = None  # worked solutions for the SFT warm-up, if the file has them
    template: str = "{prompt}"

    _template_has_prompt = field_validator("template")(lambda cls, v: prompt_template(v))


def prompt_template(template: str) -> str:
    """A task's prompt template must place the problem: without ``{prompt}`` every problem reads the same.
    Other braces are text (``\\boxed{}`` in an instruction), as the task substitutes ``{prompt}`` alone."""
    if "{prompt}" not in template:
        raise ValueError(f"a template places the problem with {{prompt}}, got {template!r}")
    return template


class DatasetTaskConfig(Section):
    """A Hugging Face ``datasets`` dataset with a field mapping (itero/tasks/dataset.py, docs/extending.md)."""

    path: str | None = None  # hub id, or a save_to_disk folder, a folder of data files, a parquet / JSONL / CSV file
    config: str | None = None  # the hub dataset's config (subset)
    split: str = "train"
    test_split: str | None = None  # None: hold out the first num_test rows of split
    num_test: int = Field(200, ge=1)
    prompt_field: str = "problem"
    answer_field: str | None = "gold_answer"  # None: no gold answers (rewards from functions / a reward model)
    solution_field: str | None = None  # worked solutions for the SFT warm-up, if the dataset has them
    columns: list[str] | None = None  # columns handed to reward functions; None = every column
    template: str = "{prompt}"
    _template_has_prompt = field_validator("template")(lambda cls, v: prompt_template(v))
    # true: the tokenizer's apply_chat_template renders the prompt as a user turn; a string: that Jinja template
    chat_template: bool | str = False
    system_prompt: str | None = None  # a system turn before it, with a chat template


class TaskConfig(Section):
    name: Literal["arithmetic", "jsonl", "dataset"] = "arithmetic"
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    jsonl: JsonlTaskConfig = JsonlTaskConfig()
    dataset: DatasetTaskConfig = DatasetTaskConfig()

    @model_validator(mode="before")
    @classmethod
    def _dataset_by_default(cls, data: Any):
        # a `dataset:` section without a task name means that dataset, not the arithmetic task
        if isinstance(data, dict) and "dataset" in data and "name" not in data:
            data = {**data, "name": "dataset"}
        return data

    @model_validator(mode="after")
    def _jsonl_has_path(self):
        if self.name == "jsonl" and not self.jsonl.train_path:
            raise ValueError("task.name=jsonl needs task.jsonl.train_path (a JSONL file of problems)")
        if self.name == "dataset" and not self.dataset.path:
            raise ValueError("task.name=dataset needs task.dataset.path (a hub id or a local dataset folder / file)")
        return self
