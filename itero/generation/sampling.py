"""Next-token sampling and stop-string detection for the hf backend (pure tensor code plus one tokenizer call)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def filter_logits(z: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set every logit outside the top-k and outside the nucleus (top-p) to -inf. z (N, V) → (N, V).

    The nucleus is the smallest set of most likely tokens whose mass reaches top_p: a token stays
    when the mass of the tokens ranked above it is still below top_p, so the best token always stays.
    """
    if 0 < top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p < 1.0:
        sorted_z, order = z.sort(dim=-1, descending=True)
        probs = sorted_z.softmax(-1)
        mass_above = probs.cumsum(-1) - probs
        drop_sorted = mass_above >= top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        z = z.masked_fill(drop, float("-inf"))
    return z


def sample_next(
    logits: Tensor,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One token per row from logits (N, V). Returns (tokens (N,) long, logprobs (N,) float32).

    The log-prob is of softmax(logits / temperature) before top-k/top-p truncation (temperature 1
    when greedy): that is what the learner recomputes, so sampler and learner log-probs agree.
    """
    z = logits.float()
    if temperature == 0:
        logp = z.log_softmax(-1)
        tokens = z.argmax(-1)
    else:
        if temperature != 1.0:
            z = z / temperature
        logp = z.log_softmax(-1)
        if top_k > 0 or top_p < 1.0:
            probs = filter_logits(z, top_k, top_p).softmax(-1)
        else:
            probs = logp.exp()
        tokens = draw(probs, generator)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def draw(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of probs (N, V), by inverting the CDF with one uniform per row.

    A tenth of a small model's decode step went to torch.multinomial on CPU; this needs a cumsum and
    a binary search. u is in (0, total], and the first index whose CDF reaches u always has
    positive probability, so filtered-out tokens are never drawn.
    """
    cdf = probs.cumsum(-1)
    u = (1.0 - torch.rand(probs.shape[0], 1, generator=generator, device=probs.device)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


class StopStrings:
    """Finds rows whose newest token completes a stop string, decoding only the tail of each row.

    A stop string of L characters that ends in the newest token starts within the last L tokens
    (a token decodes to at least one character); one token more absorbs tokenizers that strip a
    leading space at the start of a decode. Earlier occurrences cannot be in the window: the row
    would have stopped there.
    """

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.window = max((len(s) for s in self.stops), default=0) + 1

    def __bool__(self) -> bool:
        return bool(self.stops)

    def hits(self, response_ids: Tensor) -> Tensor:
        """response_ids (N, t) — the tokens generated so far by N rows → (N,) bool."""
        if not self.stops or response_ids.shape[0] == 0:
            return torch.zeros(response_ids.shape[0], dtype=torch.bool)
        tails = self.tokenizer.batch_decode(response_ids[:, -self.window :].tolist(), skip_special_tokens=True)
        return torch.tensor([any(s in text for s in self.stops) for text in tails], dtype=torch.bool)
