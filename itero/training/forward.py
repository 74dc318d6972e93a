"""The policy's forward over a RolloutBatch: next-token logits at the response positions, per-token
log-probs, and the frozen micro-batched pass that gives a whole batch's old / reference log-probs
(or, with another per-token ``forward``, a critic's values).

The learner's training forward and every frozen pass share ``forward_logits``, so a policy scored
before and after an update, or against its reference, differs only by its weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from itero.batch import RolloutBatch, position_ids
from itero.core.logprobs import token_logprobs


def forward_logits(model, batch: RolloutBatch) -> Tensor:
    """Next-token logits at every response position, (B, R, V): row t predicts response token t."""
    R = batch.response_ids.shape[1]
    input_ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    attention_mask = torch.cat([batch.prompt_mask.long(), torch.ones_like(batch.response_ids)], dim=1)
    # logits only at positions P-1 .. P+R-1: the lm_head never runs over the prompt
    return model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(batch.prompt_mask, R),
        logits_to_keep=R + 1,
        use_cache=False,
    ).logits[:, :-1]


def forward_logprobs(model, batch: RolloutBatch, temperature: float = 1.0) -> Tensor:
    """log π(response_ids | prompt) per response token, (B, R), 0 where response_mask is False."""
    return token_logprobs(forward_logits(model, batch), batch.response_ids, temperature) * batch.response_mask


@torch.no_grad()
def compute_logprobs(
    model, batch: RolloutBatch, micro_batch_size: int, temperature: float = 1.0, forward: Callable = forward_logprobs
) -> Tensor:
    """Frozen per-token outputs of a whole batch, micro-batched: log-probs (old / ref), or with
    ``forward=forward_values`` a critic's V_old. (B, R) float32."""
    was_training = model.training
    model.eval()
    out = torch.zeros(batch.response_ids.shape, dtype=torch.float32)
    device = next(model.parameters()).device
    for start in range(0, batch.batch_size, micro_batch_size):
        rows = list(range(start, min(start + micro_batch_size, batch.batch_size)))
        mb = batch.select(rows).trimmed().to(device)
        out[start : start + len(rows), : mb.response_ids.shape[1]] = forward(model, mb, temperature).float().cpu()
    model.train(was_training)
    return out
