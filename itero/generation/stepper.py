"""The hf backend's model stepper: prefill and one decode step of a causal LM (or a mixture of two)
over caches sized for the whole generation; ``fast_decode`` runs Qwen2 / Llama without the HF modules."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import DynamicCache

from itero.batch import position_ids
from itero.generation.fast_decode import fast_decoders
from itero.generation.kv_cache import PreallocatedLayer, preallocated_cache

# The generic path prefills in up to this many groups of similar prompt length; fewer rows per group
# than the minimum makes the matmuls too small to be worth it.
PREFILL_BUCKETS = 8
PREFILL_BUCKET_MIN_ROWS = 16


@dataclass(frozen=True)
class Mixture:
    """Sample from softmax((w0·z_policy + w1·z_other) / temperature) (the samplers paper's "mixp").

    z are the raw next-token logits of the policy and of ``model`` at the same prefix; each model
    keeps its own KV cache. top-k / top-p apply after mixing and sampler_logprobs are of the mixture.
    """

    model: torch.nn.Module
    weights: tuple[float, float] = (1.5, -0.5)


class Stepper:
    """Runs the policy (and the mixture's other model) on new tokens, each with its own KV cache,
    and returns the next-token logits (N, V) float32, mixed when there is a mixture.

    The caches hold the rows sorted by prompt length (cache row i is the caller's row ``order[i]``):
    the prefill buckets are then contiguous, and the fast path attends each group of rows only
    over the columns where one of them has a token, skipping most of the left padding.
    """

    def __init__(self, model, mixture: Mixture | None, capacity: int):
        self.models = [model] + ([mixture.model] if mixture is not None else [])
        self.weights = mixture.weights if mixture is not None else (1.0,)
        self.caches = [preallocated_cache(m.config, capacity) for m in self.models]
        self.keep_kwargs = [_logits_to_keep_kwargs(m) for m in self.models]
        # Prefill and decode skip the HF modules when every model is one fast_decode has been checked against.
        self.fast = fast_decoders(self.models, self.caches, capacity)
        self.order: Tensor | None = None

    def __call__(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        inputs = [x[self.order] for x in (input_ids, attention_mask, positions)]
        if self.fast is None:
            return self._unsort(self._forward(*inputs, self.caches))
        return self._unsort(self._mix(decode(*inputs) for decode in self.fast))

    def prefill(self, prompt_ids: Tensor, prompt_mask: Tensor) -> Tensor:
        """Next-token logits (B, V) after each left-padded prompt, filling the caches."""
        self.order = prompt_mask.sum(-1).argsort(stable=True)
        prompt_ids, prompt_mask = prompt_ids[self.order], prompt_mask[self.order]
        positions = position_ids(prompt_mask, 0)
        if self.fast is not None:
            return self._unsort(self._mix(f.prefill(prompt_ids, prompt_mask, positions) for f in self.fast))
        return self._unsort(self._prefill_in_buckets(prompt_ids, prompt_mask, positions))

    def _prefill_in_buckets(self, prompt_ids: Tensor, prompt_mask: Tensor, positions: Tensor) -> Tensor:
        """Rows run in buckets of similar prompt length, each padded only to its own longest prompt,
        and their KV are written right-aligned into the shared caches: a single left-padded batch
        of mixed lengths wasted ~40% of the prefill, itself a third of a whole generation.
        """
        B, P = prompt_ids.shape
        buckets = _length_buckets(prompt_mask.sum(-1))
        bucketable = all(isinstance(layer, PreallocatedLayer) for c in self.caches for layer in c.layers)
        if len(buckets) == 1 or not bucketable:
            return self._forward(prompt_ids, prompt_mask.long(), positions, self.caches)
        logits = None
        for rows in buckets:
            width = int(prompt_mask[rows].sum(-1).max())
            inputs = [x[rows, P - width :] for x in (prompt_ids, prompt_mask.long(), positions)]
            scratch = [DynamicCache(config=m.config) for m in self.models]
            z = self._forward(*inputs, scratch)
            logits = z.new_empty(B, z.shape[-1]) if logits is None else logits
            logits[rows] = z
            for cache, filled in zip(self.caches, scratch):
                for layer, src in zip(cache.layers, filled.layers):
                    layer.write_rows(rows, P - width, src.keys, src.values, batch_size=B, length=P)
        return logits

    def select(self, keep: Tensor) -> None:
        """Keep only the caller's rows ``keep`` (ascending), which become rows 0..len(keep)-1."""
        kept = torch.isin(self.order, keep)
        for cache in self.caches:
            cache.batch_select_indices(kept.nonzero().squeeze(-1))
        self.order = torch.searchsorted(keep, self.order[kept])

    def _unsort(self, z: Tensor) -> Tensor:
        out = torch.empty_like(z)
        out[self.order] = z
        return out

    def _forward(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor, caches) -> Tensor:
        outputs = (
            model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                **kwargs,
            )
            .logits[:, -1]
            .float()
            for model, cache, kwargs in zip(self.models, caches, self.keep_kwargs)
        )
        return self._mix(outputs)

    def _mix(self, logits: Iterable[Tensor]) -> Tensor:
        """The one model's logits (N, V), or the weighted sum of both models' logits."""
        mixed = None
        for z, w in zip(logits, self.weights):
            if len(self.models) == 1:
                return z
            if mixed is not None and z.shape[-1] != mixed.shape[-1]:
                raise ValueError(
                    f"mixture models have different vocabulary sizes ({mixed.shape[-1]} vs {z.shape[-1]}); "
                    "mix only models that share a tokenizer and output layer"
                )
            mixed = w * z if mixed is None else mixed + w * z
        return mixed


def _length_buckets(lengths: Tensor) -> list[Tensor]:
    """Row indices grouped by prompt length: at most PREFILL_BUCKETS groups of PREFILL_BUCKET_MIN_ROWS or more."""
    n = max(1, min(PREFILL_BUCKETS, len(lengths) // PREFILL_BUCKET_MIN_ROWS))
    return list(lengths.argsort(stable=True).chunk(n))


def _logits_to_keep_kwargs(model) -> dict:
    # The prefill needs the last position only; computing the LM head over the whole prompt is wasted work.
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
