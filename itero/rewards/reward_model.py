"""Reward models: a sequence classifier (one label) scoring (prompt, response) text, and its Bradley–Terry loss.

Any ``AutoModelForSequenceClassification`` with ``num_labels=1`` works (a trained RM folder, or one
built by ``itero.models.tiny_rm``). HF pools the logit at the rightmost token that is not
``pad_token_id`` (either padding side). We right-pad: the real tokens then keep exactly the position
ids and causal attention of the unpadded sequence, so a batched score equals the one-at-a-time score
for any position encoding. (Left padding shifts the position ids; RoPE models such as Qwen2/Llama
are invariant to that shift, absolute-position models such as GPT-2 are not.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from itero.rewards.state import NormState

if TYPE_CHECKING:  # transformers costs seconds to import; `itero --help` builds every subcommand's parser
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from itero.rewards.math import MathReward


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """mean −log σ(r_chosen − r_rejected) over pairs; chosen, rejected: (N,). logsigmoid is stable for large margins."""
    return -F.logsigmoid(chosen - rejected).mean()


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Fraction of pairs ranked right (ties count as wrong, so a constant model scores 0, not 0.5)."""
    return float((chosen > rejected).float().mean()) if chosen.numel() else float("nan")


class RunningNorm:
    """Running mean/std of every score seen so far (Welford, merged a batch at a time with Chan's formula).

    RM scores have an arbitrary offset and scale that drift across checkpoints; normalising keeps RL
    rewards (and so advantages and KL trade-offs) on a stable scale. ``std`` is the sample std (n−1).
    """

    def __init__(self, clip: float | None = None, eps: float = 1e-6):
        self.clip, self.eps = clip, eps
        self.reset()

    def reset(self) -> None:
        """Forget every score seen (a run's first iteration starts here)."""
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 1.0

    def update(self, x: Tensor) -> None:
        x = x.detach().double().flatten()
        n_b = x.numel()
        if n_b == 0:
            return
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def __call__(self, x: Tensor) -> Tensor:
        """Update with ``x``, then return it normalised (the batch counts towards its own statistics)."""
        self.update(x)
        out = (x - self.mean) / (self.std + self.eps)
        return out.clamp(-self.clip, self.clip) if self.clip is not None else out

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


def encode_pairs(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int | None) -> dict[str, Tensor]:
    """Right-padded input_ids / attention_mask, (B, T). Truncation drops the start: the end is what gets scored."""
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    return tokenizer(
        list(texts), padding=True, truncation=max_length is not None, max_length=max_length, return_tensors="pt"
    )


def score_texts(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int | None = None
) -> Tensor:
    """One scalar per text, (B,), with gradients (training uses this too)."""
    enc = encode_pairs(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    logits = model(
        input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device), use_cache=False
    ).logits
    return logits[:, 0].float()  # (B, 1) -> (B,)


class RewardModel(NormState):
    """Scores (prompt, response) pairs; ``grade`` has MathReward's shape so the loop can use either.

    ``template`` joins prompt and response into the text the RM saw in training. ``verifier`` (optional)
    supplies the ``correct`` flags where gold answers exist; without one they are all False, because
    an RM score says nothing about correctness.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        template: str = "{prompt}{response}",
        normalize: bool = False,
        clip: float | None = None,
        verifier: MathReward | None = None,
    ):
        if model.config.num_labels != 1:
            raise ValueError(f"a reward model needs num_labels=1, this one has {model.config.num_labels}")
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id  # HF finds the last token through it
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length, self.template = batch_size, max_length, template
        self.norm = RunningNorm(clip) if normalize else None
        self.clip = clip
        self.verifier = verifier
        self.last_metrics: dict[str, float] = {}

    @classmethod
    def from_pretrained(
        cls, path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu", **kwargs
    ) -> RewardModel:
        from transformers import AutoModelForSequenceClassification

        from itero.models.loading import load_tokenizer

        tokenizer = load_tokenizer(str(path))  # checks the folder exists and keeps a char tokenizer's pre-tokenizer
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=dtype).to(device)
        return cls(model, tokenizer, **kwargs)

    @torch.no_grad()
    def raw_scores(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        """Unnormalised scores, (B,) float32, in input order."""
        texts = [self.template.format(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]
        out = [
            score_texts(self.model, self.tokenizer, texts[i : i + self.batch_size], self.max_length).cpu()
            for i in range(0, len(texts), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        """Scores for RL, (B,): normalised with the running statistics (updated by this call) if ``normalize``."""
        s = self.raw_scores(prompts, responses)
        if self.norm is not None:
            return self.norm(s)
        return s.clamp(-self.clip, self.clip) if self.clip is not None else s

    def grade(
        self, responses: Sequence[str], answers: Sequence[str], prompts: Sequence[str] | None = None
    ) -> tuple[list[float], list[bool]]:
        """(rewards, correct flags). Without ``prompts`` (the loop does not pass them yet) the response is scored alone."""
        prompts = list(prompts) if prompts is not None else [""] * len(responses)
        return self.score(prompts, responses).tolist(), self.correct(responses, answers)

    def correct(self, responses: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """The verifier's flags; all False without one (an RM score says nothing about correctness)."""
        return self.verifier.correct(responses, answers) if self.verifier is not None else [False] * len(responses)

    def __call__(self, responses: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self.grade(responses, answers)[0]
