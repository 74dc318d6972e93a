"""Logits → per-token log-probs and entropy, memory-bounded."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """log softmax(logits / temperature)[tokens]. logits (B, T, V), tokens (B, T) → (B, T) float32.

    Computed in chunks of rows in float32, so a large vocabulary never materialises a full
    (B, T, V) float32 log-softmax next to the logits.
    """
    B, T, V = logits.shape
    flat_logits = logits.reshape(-1, V)
    flat_tokens = tokens.reshape(-1)
    out = torch.empty(flat_tokens.shape, dtype=torch.float32, device=logits.device)
    for start in range(0, flat_logits.shape[0], chunk_size):
        z = flat_logits[start : start + chunk_size].float()
        if temperature != 1.0:
            z = z / temperature
        picked = z.gather(-1, flat_tokens[start : start + chunk_size, None]).squeeze(-1)
        out[start : start + chunk_size] = picked - torch.logsumexp(z, dim=-1)
    return out.view(B, T)


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of softmax(logits / temperature) at each position. (B, T, V) → (B, T)."""
    z = logits.float() / temperature
    logp = F.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def token_entropy(logits: Tensor, temperature: float = 1.0, chunk_size: int = 128) -> Tensor:
    """:func:`entropy_from_logits` with its gradient, (B, T, V) → (B, T) float32.

    Chunks of ``chunk_size`` positions are checkpointed when a gradient is needed, so backward
    recomputes one chunk's float32 softmax at a time instead of keeping a (B, T, V) one alive.
    """
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return entropy_from_logits(logits, temperature)
    chunks = [
        checkpoint(entropy_from_logits, logits[:, s : s + chunk_size], temperature, use_reentrant=False)
        for s in range(0, logits.shape[1], chunk_size)
    ]
    return torch.cat(chunks, dim=1)
