"""Where the built-in data sets come from: a public Hugging Face dataset by default, a local folder on request.

Precedence for a built-in benchmark (``math500``, ``gsm8k``, ...) or a known hub source in a task config:

1. a folder given explicitly (``itero eval --data-dir DIR``, ``eval.data_dir``): ``DIR/<name>/test.jsonl``;
2. the environment variable ``ITERO_DATA_DIR``: the same layout;
3. the public source in ``SOURCES``, read with ``datasets.load_dataset`` and cached by ``datasets``
   (``HF_DATASETS_CACHE``; ``HF_HUB_OFFLINE=1`` reads only that cache).

Every row of a known source gets the two uniform fields of the local copies, ``problem`` and ``gold_answer``,
derived by the same rule that wrote the local files, so both paths give the same problems and answers.
See docs/data.md for the table of sources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "ITERO_DATA_DIR"


@dataclass(frozen=True)
class HubSource:
    """One public data set: where it lives on the hub, and how its rows become ``problem`` / ``gold_answer``."""

    dataset: str  # Hugging Face dataset id (or, in tests, a local folder written by save_to_disk / parquet files)
    config: str | None
    split: str
    problem_field: str
    gold: Callable[[dict], str | None]  # the gold answer of a row; None when the row has none
    local: str  # the file inside a local data folder that holds the same rows
    license: str = ""
    skip_unanswered: bool = False  # drop rows without a gold answer (a prompt pool) instead of failing (a benchmark)

    @property
    def label(self) -> str:
        config = f" (config {self.config})" if self.config else ""
        return f"{self.dataset}{config}, split {self.split}"

    @property
    def spec(self) -> str:
        """The same source as an ``hf:`` spec, as configs and benchmark specs write it."""
        config = f"#{self.config}" if self.config else ""
        return f"hf:{self.dataset}{config}@{self.split}"


def _field(name: str) -> Callable[[dict], str | None]:
    def gold(row: dict) -> str | None:
        value = row.get(name)
        return None if value is None else str(value)

    return gold


def gsm8k_gold(row: dict) -> str | None:
    # The answer field is the worked solution ending in "#### N"; some N carry thousands commas.
    answer = row.get("answer")
    if not answer or "####" not in answer:
        return None
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def amc_gold(row: dict) -> str | None:
    # The source stores every answer as a float (27.0); the integer reads better and grades the same.
    value = row.get("answer")
    if value is None:
        return None
    text = str(value)
    return text[:-2] if text.endswith(".0") else text


def boxed_gold(row: dict) -> str | None:
    """The last ``\\boxed{}`` of the solution; a source that ships the extracted answer instead is used as is."""
    solution = row.get("solution")
    if not isinstance(solution, str):
        return _field("answer")(row)
    return last_boxed(solution)


def last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}``, braces matched (``\\{`` does not count); None if none closes."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, index = 0, start + len("\\boxed")
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        depth += (char == "{") - (char == "}")
        if depth == 0:
            content = text[start + len("\\boxed{") : index].strip()
            return content or None
        index += 1
    return None


_DOLLAR_COMMA_RE = re.compile(r"\$\s*,\s*\$")


def olympiad_gold(row: dict) -> str | None:
    # final_answer is a list; one element may itself hold several answers as "$a$,$b$".
    answers = row.get("final_answer")
    if answers is None:
        return None
    if isinstance(answers, str):
        answers = [answers]
    parts = []
    for answer in answers:
        text = str(answer).strip()
        text = text.removeprefix("$").removesuffix("$")  # each side on its own: some answers end in "$."
        parts.append(_DOLLAR_COMMA_RE.sub(", ", text))
    return ", ".join(parts) if parts else None


# Field names come from each dataset's card (dataset_info features) and from public code that loads it;
# they could not be checked against the live hub from here.
SOURCES = {
    "math500": HubSource("HuggingFaceH4/MATH-500", None, "test", "problem", _field("answer"), "math500/test.jsonl"),
    "gsm8k": HubSource("openai/gsm8k", "main", "test", "question", gsm8k_gold, "gsm8k/test.jsonl", "MIT"),
    "aime24": HubSource("HuggingFaceH4/aime_2024", None, "train", "problem", _field("answer"), "aime24/test.jsonl"),
    "amc23": HubSource("math-ai/amc23", None, "test", "question", amc_gold, "amc23/test.jsonl"),
    "minerva_math": HubSource("math-ai/minervamath", None, "test", "question", boxed_gold, "minerva_math/test.jsonl"),
    "olympiadbench": HubSource(
        "math-ai/olympiadbench", None, "test", "question", olympiad_gold, "olympiadbench/test.jsonl"
    ),
    "gsm8k_train": HubSource("openai/gsm8k", "main", "train", "question", gsm8k_gold, "gsm8k/train.jsonl", "MIT"),
    "math_train": HubSource(
        "DigitalLearningGmbH/MATH-lighteval",
        None,
        "train",
        "problem",
        boxed_gold,
        "math/train.jsonl",
        "MIT",
        skip_unanswered=True,
    ),
}


def data_dir_override(explicit: str | Path | None = None) -> Path | None:
    """The local folder that replaces the hub: the explicit one, else $ITERO_DATA_DIR, else None (use the hub)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else None


def default_data_dir() -> Path:
    """The local folder ``itero grade --check`` reads when none is given: $ITERO_DATA_DIR, else ./data."""
    return data_dir_override() or Path("data")


def source_for(dataset: str, config: str | None, split: str | None = None) -> HubSource | None:
    """The known source with this id and config (and split, if given), so its rows get the uniform fields."""
    config = None if config == "default" else config  # the hub's name for a dataset's only config
    for source in SOURCES.values():
        if source.dataset == dataset and source.config == config:
            if split is None or source.split == split:
                return source
    return None


def with_uniform_fields(source: HubSource, row: dict) -> dict | None:
    """The row plus ``problem`` and ``gold_answer`` (every original field kept); None without a gold answer."""
    gold = source.gold(row)
    if gold is None:
        return None
    return {**row, "problem": row.get(source.problem_field), "gold_answer": gold}
