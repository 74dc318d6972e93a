"""π_old for the clipped ratio, for free where the sampler already computed it.

The hf sampler runs the policy's own weights and returns log softmax(logits / T) of each sampled
token before top-k / top-p truncation: the number the learner's forward recomputes in prepare, up
to float rounding between the KV-cache decode and one full forward. Where that holds (same weights,
same temperature, every sample from the policy), the sampler's log-probs serve as ``old_logprobs``:
checked per token on a first micro-batch of rows and kept only when every one agrees within
``TOLERANCE``, else recomputed. vLLM's log-probs come from another engine and are never used so.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from itero.batch import RolloutBatch

TOLERANCE = 1e-4  # nats per token: far above float32 rounding, far below any policy update's change


def sampler_is_the_policy(cfg, k: int, temperature: float) -> bool:
    """Whether iteration k's sampler log-probs are π_old's at the learner's ``temperature``."""
    g = cfg.generation
    sampler = g.sampler if k >= g.sampler_from_iteration else "online"
    sampled_at = g.temperature if g.temperature > 0 else 1.0  # greedy logs the T = 1 log-prob
    return g.reuse_sampler_logprobs and g.backend == "hf" and sampler == "online" and sampled_at == temperature


def old_logprobs(
    batch: RolloutBatch, forward: Callable[[RolloutBatch], Tensor], rows_to_check: int, reuse: bool
) -> tuple[Tensor, dict[str, float]]:
    """(B, R) π_old log-probs and stats. ``forward`` computes them over a batch (split over ranks);
    with ``reuse`` the sampler's are taken once the first ``rows_to_check`` rows agree with it."""
    if not reuse or batch.sampler_logprobs is None:
        return forward(batch), {}
    n = min(batch.batch_size, rows_to_check)  # the same rows under any process layout (2 processes = 1)
    head = batch.select(list(range(n)))
    learner = forward(head)
    mask = head.response_mask
    gap = float(((learner - head.sampler_logprobs).abs() * mask).max()) if mask.any() else 0.0
    if gap > TOLERANCE:
        return forward(batch), {"old_logprobs_sampler_gap": gap, "old_logprobs_from_sampler": 0.0}
    rest = batch.sampler_logprobs[n:] * batch.response_mask[n:]
    old = torch.cat([learner, rest.to(learner.dtype)])
    return old, {"old_logprobs_sampler_gap": gap, "old_logprobs_from_sampler": 1.0}
