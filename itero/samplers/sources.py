"""Which model generates each of a prompt's n samples: the online-DPO samplers of the samplers paper.

- ``online``: all n from the current policy π_θ.
- ``ref``: all n from the initial model π_ref ("vanilla"/"offline" DPO: fresh samples, always off-policy).
- ``gshf``: the first half from π_ref, the second half from π_θ (hybrid GSHF).
- ``mixp``: per-token logit mixtures of π_θ and π_ref, half with weights (1.5, −0.5) (∝ π_θ·(π_θ/π_ref)^½)
  and half with (0.5, 0.5) (∝ π_θ·(π_θ/π_ref)^−½); temperature applies after mixing. With
  ``on_policy_samples`` = m > 0 the first m samples come from π_θ itself, the Iterative-Prompt layout
  [on-policy…, mixed…] that ``pairing: mixed_max_min`` splits 0.3 : 0.7.

A prompt's samples stay contiguous and in this order (``group_ids`` as from one ``generate`` call),
so pair strategies that look at halves see the sources where they expect them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from itero.batch import RolloutBatch
from itero.generation.base import SamplingParams

SAMPLERS = ("online", "ref", "gshf", "mixp")
MIXP_WEIGHTS = ((1.5, -0.5), (0.5, 0.5))


@dataclass(frozen=True)
class Source:
    """``count`` samples per prompt from ``model`` ("policy" or "ref"), mixed with the other model when ``mix`` is set."""

    model: str
    count: int
    mix: tuple[float, float] | None = None  # (w_policy, w_ref) of the per-token logit mixture


def plan(sampler: str, n: int, on_policy_samples: int = 0) -> list[Source]:
    """The sources of one prompt's n samples, in sample order."""
    if sampler == "online":
        return [Source("policy", n)]
    if sampler == "ref":
        return [Source("ref", n)]
    if sampler == "gshf":
        _need_even(sampler, n)
        return [Source("ref", n // 2), Source("policy", n // 2)]
    if sampler == "mixp":
        mixed = n - on_policy_samples
        if on_policy_samples < 0 or mixed < 2 or mixed % 2:
            raise ValueError(
                f"mixp needs an even number (>= 2) of mixed samples per prompt; got n={n} with on_policy_samples={on_policy_samples}"
            )
        head = [Source("policy", on_policy_samples)] if on_policy_samples else []
        return head + [Source("policy", mixed // 2, MIXP_WEIGHTS[0]), Source("policy", mixed // 2, MIXP_WEIGHTS[1])]
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def _need_even(sampler: str, n: int) -> None:
    if n < 2 or n % 2:
        raise ValueError(
            f"sampler {sampler!r} splits each prompt's samples in halves; n_samples_per_prompt must be even, got {n}"
        )


def generate(
    policy,
    reference: Callable[[], torch.nn.Module],
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    sources: list[Source],
    **texts,
) -> RolloutBatch:
    """n = Σ count samples per prompt from ``sources`` (``policy`` is the policy's HFGenerator); each prompt's rows contiguous, in source order.

    ``reference`` returns the frozen initial model (loaded only when a source needs it); ``texts`` are
    ``prompt_texts`` / ``answers`` forwarded to the generator. Each source draws with its own seed
    offset, so adding a source never changes what another one samples.
    """
    from itero.generation.hf import HFGenerator, Mixture  # the mixture needs our own decode loop

    if len(sources) == 1 and sources[0].model == "policy" and sources[0].mix is None:
        return policy.generate(prompts, params, **texts)
    parts = []
    for k, src in enumerate(sources):
        p = dataclasses.replace(params, n=src.count, seed=None if params.seed is None else params.seed + 7_919 * k)
        if src.model == "ref":
            gen = HFGenerator(reference(), policy.tokenizer, batch_size=policy.batch_size)
            parts.append(gen.generate(prompts, p, **texts))
        else:
            mixture = Mixture(reference(), src.mix) if src.mix is not None else None
            parts.append(policy.generate(prompts, p, mixture=mixture, **texts))
    return interleave(parts, [s.count for s in sources], len(prompts), policy.pad_token_id)


def interleave(parts: list[RolloutBatch], counts: list[int], num_prompts: int, pad_token_id: int) -> RolloutBatch:
    """One batch whose rows are prompt 0's samples from every part (in part order), then prompt 1's, ..."""
    batch = RolloutBatch.concat(parts, pad_token_id)
    offsets = [sum(counts[:k]) * num_prompts for k in range(len(counts))]
    order = [
        offsets[k] + i * counts[k] + j for i in range(num_prompts) for k in range(len(counts)) for j in range(counts[k])
    ]
    batch = batch.select(order)
    return batch.replace(group_ids=torch.arange(num_prompts).repeat_interleave(sum(counts)))
