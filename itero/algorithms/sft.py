"""Supervised fine-tuning: token-mean NLL on given responses (the warm-up stage, and RAFT's loss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from itero.batch import RolloutBatch
from itero.core.masked import aggregation_weights

rows_per_unit = 1


def make_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_token_id: int) -> RolloutBatch:
    """A RolloutBatch from tokenized (prompt, response) pairs, e.g. worked solutions ending in EOS."""
    B = len(prompts)
    P = max(len(p) for p in prompts)
    R = max(len(r) for r in responses)
    prompt_ids = torch.full((B, P), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros(B, P, dtype=torch.bool)
    response_ids = torch.full((B, R), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros(B, R, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        prompt_ids[i, P - len(p) :] = torch.tensor(p)
        prompt_mask[i, P - len(p) :] = True
        response_ids[i, : len(r)] = torch.tensor(r)
        response_mask[i, : len(r)] = True
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=response_ids,
        response_mask=response_mask,
        group_ids=torch.arange(B),
        truncated=torch.zeros(B, dtype=torch.bool),
    )


def prepare(batch: RolloutBatch) -> RolloutBatch:
    """Token-mean NLL over every response token of the batch (as HF SFT)."""
    return batch.replace(token_weights=aggregation_weights(batch.response_mask, "token-mean"))


def loss(batch: RolloutBatch, logprobs: Tensor, cfg=None) -> tuple[Tensor, dict[str, float]]:
    nll = -(batch.token_weights * logprobs).sum()
    return nll, {}
