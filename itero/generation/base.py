"""The Generator protocol and sampling parameters shared by every backend (hf on CPU, vLLM on GPUs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from itero.batch import RolloutBatch

if TYPE_CHECKING:
    from itero.generation.stepper import Mixture


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
    """What the loop, the model pool, the samplers and VinePPO's rollouts call on a generation backend."""

    batch_size: int | None  # rows per forward batch; None = all at once (the engine schedules its own)
    tokenizer: Any  # the policy's; the samplers build a reference model's hf generator with it
    pad_token_id: int  # pads the rows of the batches it returns

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        prompt_texts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
        mixture: Mixture | None = None,
    ) -> RolloutBatch:
        """Sample ``params.n`` responses for each prompt (token ids, no padding).

        Fills prompt_ids / prompt_mask / response_ids / response_mask / group_ids / truncated /
        response_texts / sampler_logprobs (log-softmax of logits/temperature at the sampled token,
        before top-k/top-p truncation; of the raw logits when greedy). ``prompt_texts`` and
        ``answers`` are per prompt and are repeated n times into the batch. ``mixture`` (a sampler
        source's ``mix``) samples from the policy's logits mixed token by token with a reference's;
        only a backend that runs its own decode loop (hf) can, the others raise NotImplementedError.
        """
        ...

    def continue_from(
        self,
        prefixes: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        prompt_lengths: Sequence[int] | None = None,
        prompt_texts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
    ) -> RolloutBatch:
        """``params.n`` continuations of each prefix (prompt + partial response, VinePPO's states): the
        batch's prompt_ids hold the whole prefix and its responses the continuations. With
        ``prompt_lengths`` (the prompt part of each prefix) a continuation keeps at most what the partial
        response left of ``max_new_tokens``, so it ends where a full sample would have."""
        ...

    def update_weights(self, model) -> None:
        """Serve ``model``'s current weights (a no-op for a backend that samples with the module itself)."""
        ...

    def load_adapter(self, folder: str | Path | None, model) -> None:
        """Serve the LoRA policy ``model`` whose adapters are saved in ``folder`` (None: its adapters'
        base alone, before any adapter checkpoint), in place of ``update_weights`` for a LoRA policy:
        an engine keeps the base and takes the adapter folder as it is saved, with no weight sync; a
        backend that samples with the module itself already runs its adapters (a no-op)."""
        ...

    def sleep(self, level: int = 1) -> None:
        """Give back the memory generation holds while the learner trains: a vLLM engine built with
        ``generation.vllm_sleep_mode`` keeps its weights in CPU RAM (level 1) or drops them (level 2,
        when a weight sync follows anyway); the next generate or weight update takes the memory back.
        A no-op for a backend that holds nothing of its own (hf samples with the policy's modules)."""
        ...


def continuation_budgets(
    prefixes: Sequence[Sequence[int]], prompt_lengths: Sequence[int], max_new_tokens: int
) -> list[int]:
    """Tokens each continuation may add: ``max_new_tokens`` less the partial response already in its prefix."""
    if len(prompt_lengths) != len(prefixes):
        raise ValueError(f"{len(prompt_lengths)} prompt lengths for {len(prefixes)} prefixes; give one per prefix")
    budgets = []
    for i, (prefix, p_len) in enumerate(zip(prefixes, prompt_lengths)):
        budget = max_new_tokens - (len(prefix) - p_len)
        if not 0 < p_len <= len(prefix) or budget < 1:
            raise ValueError(
                f"prefix {i} ({len(prefix)} tokens, prompt {p_len}) leaves {budget} of max_new_tokens="
                f"{max_new_tokens} to generate; a continuation needs a non-empty prompt and >= 1 token left"
            )
        budgets.append(budget)
    return budgets
