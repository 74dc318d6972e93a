"""The Generator protocol and sampling parameters shared by every backend (hf on CPU, vLLM on GPUs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from itero.batch import RolloutBatch


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt; rows i*n .. i*n+n-1 of the result belong to prompt i (group_ids = i)
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # generation of a row ends after the first token that completes one of these
    seed: int | None = None


class Generator(Protocol):
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        prompt_texts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
    ) -> RolloutBatch:
        """Sample ``params.n`` responses for each prompt (token ids, no padding).

        Fills prompt_ids / prompt_mask / response_ids / response_mask / group_ids / truncated /
        response_texts / sampler_logprobs (log-softmax of logits/temperature at the sampled token,
        before top-k/top-p truncation; of the raw logits when greedy). ``prompt_texts`` and
        ``answers`` are per prompt and are repeated n times into the batch.
        """
        ...
