"""RolloutBatch: the one tensor dataclass that flows through generate → score → prepare → train.

Layout. B rows, one sampled response each. Prompts are left-padded to P columns and responses
right-padded to R columns, so the model input is ``cat(prompt_ids, response_ids)`` and every
response starts at column P. Per-token RL quantities live on the response columns only (B, R).

Notation: π_θ the policy being trained, π_old the policy that sampled (or the learner's copy of it
before this phase's updates), π_ref the reference model.

Stages fill the optional fields; an algorithm's ``prepare`` may select rows (filters, pairs) with
``select``. ``token_weights`` and ``seq_weights`` carry the loss aggregation: each is computed once
over the whole batch, so the sum over micro-batches of Σ weight·loss is the full-batch objective
whatever the micro-batch split (gradient accumulation invariance comes from here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class RolloutBatch:
    # trajectory
    prompt_ids: Tensor  # (B, P) long, left-padded with pad_token_id
    prompt_mask: Tensor  # (B, P) bool, True on real prompt tokens
    response_ids: Tensor  # (B, R) long, right-padded
    response_mask: Tensor  # (B, R) bool, True on sampled tokens (EOS included) that are trained
    group_ids: Tensor  # (B,) long, index of the prompt a row was sampled for; rows of a group share it
    truncated: Tensor  # (B,) bool, True when generation stopped at max_new_tokens (finish reason "length")

    # text and task metadata, one entry per row (never re-encoded: training uses the token ids above)
    prompt_texts: list[str] = field(default_factory=list)
    response_texts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # gold answers, for rule-based rewards

    # log-probs
    sampler_logprobs: Tensor | None = None  # (B, R) log π_sampler(y_t) as the generator sampled it
    old_logprobs: Tensor | None = None  # (B, R) log π_old(y_t), recomputed by the learner
    ref_logprobs: Tensor | None = None  # (B, R) log π_ref(y_t)
    dpo_logprobs: Tensor | None = None  # (B, R) log π_dpo(y_t) of RTO's frozen DPO model

    # rewards and credit assignment
    scores: Tensor | None = None  # (B,) float, outcome score of each response (verifier / RM)
    # (B, R) float, the per-token reward an algorithm trains on, set by its prepare (PPO, RTO, RLOO, DAPO):
    # the outcome score at the last response token plus its shaping (KL per token, token rewards, penalties)
    rewards: Tensor | None = None
    values: Tensor | None = None  # (B, R) float, V(s_t) from the value model
    advantages: Tensor | None = None  # (B, R) float
    returns: Tensor | None = None  # (B, R) float

    # loss aggregation (see module docstring)
    token_weights: Tensor | None = None  # (B, R) float, weight of each token's loss term
    seq_weights: Tensor | None = None  # (B,) float, weight of each row's (or pair's) loss term
    score_mask: Tensor | None = None  # (B, R) bool, tokens summed into a sequence log-prob (DPO); None = response_mask

    @property
    def batch_size(self) -> int:
        return self.prompt_ids.shape[0]

    @property
    def response_lengths(self) -> Tensor:  # (B,) long
        return self.response_mask.sum(-1)

    def tensor_fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), Tensor)]

    def select(self, index: Tensor | list[int]) -> RolloutBatch:
        """Rows ``index`` (in that order, repeats allowed) as a new batch; every field follows."""
        index = torch.as_tensor(index, dtype=torch.long)
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                out[f.name] = value[index.to(value.device)]
            elif isinstance(value, list) and value:
                out[f.name] = [value[i] for i in index.tolist()]
            else:
                out[f.name] = value
        return RolloutBatch(**out)

    def replace(self, **changes) -> RolloutBatch:
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> RolloutBatch:
        return dataclasses.replace(self, **{name: getattr(self, name).to(device) for name in self.tensor_fields()})

    def trimmed(self) -> RolloutBatch:
        """Drop prompt columns that are padding in every row and response columns past the longest response.

        Saves compute in the learner; per-token fields are cut with the response columns.
        """
        p_keep = self.prompt_mask.any(0).nonzero()
        p0 = int(p_keep[0]) if len(p_keep) else self.prompt_mask.shape[1]
        r_keep = self.response_mask.any(0).nonzero()
        r1 = int(r_keep[-1]) + 1 if len(r_keep) else 0
        out = {}
        for name in self.tensor_fields():
            value = getattr(self, name)
            if name in ("prompt_ids", "prompt_mask"):
                out[name] = value[:, p0:]
            elif value.dim() == 2:
                out[name] = value[:, :r1]
        return dataclasses.replace(self, **out)

    @staticmethod
    def concat(batches: list[RolloutBatch], pad_token_id: int) -> RolloutBatch:
        """Stack batches row-wise, re-padding prompts (left) and responses (right) to common widths.

        ``group_ids`` are kept as given: callers that merge independent generations offset them first.
        """
        P = max(b.prompt_ids.shape[1] for b in batches)
        R = max(b.response_ids.shape[1] for b in batches)
        out = {}
        for f in dataclasses.fields(RolloutBatch):
            values = [getattr(b, f.name) for b in batches]
            if all(isinstance(v, Tensor) for v in values):
                if f.name in ("prompt_ids", "prompt_mask"):
                    fill = pad_token_id if f.name == "prompt_ids" else 0
                    values = [_pad(v, P, fill, left=True) for v in values]
                elif values[0].dim() == 2:
                    fill = pad_token_id if f.name == "response_ids" else 0
                    values = [_pad(v, R, fill, left=False) for v in values]
                out[f.name] = torch.cat(values)
            elif all(isinstance(v, list) for v in values):
                out[f.name] = [x for v in values for x in v]
            else:  # a field some batches lack is dropped
                out[f.name] = None
        return RolloutBatch(**out)


def _pad(x: Tensor, width: int, fill, left: bool) -> Tensor:
    extra = width - x.shape[1]
    if extra == 0:
        return x
    pad = torch.full((x.shape[0], extra), fill, dtype=x.dtype, device=x.device)
    return torch.cat([pad, x] if left else [x, pad], dim=1)


def position_ids(prompt_mask: Tensor, response_mask_or_width: Tensor | int) -> Tensor:
    """Position ids for ``cat(prompt, response)`` that ignore left padding. (B, P+R) long.

    Generation and training must use the same positions, or the learner's log-probs drift from the
    sampler's on left-padded rows.
    """
    B = prompt_mask.shape[0]
    R = response_mask_or_width if isinstance(response_mask_or_width, int) else response_mask_or_width.shape[1]
    ones = torch.ones(B, R, dtype=torch.long, device=prompt_mask.device)
    mask = torch.cat([prompt_mask.long(), ones], dim=1)
    return (mask.cumsum(-1) - 1).clamp(min=0)
