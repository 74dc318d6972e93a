"""The PPO critic: a causal-LM backbone (``AutoModel``, no LM head) with a scalar value head.

Initialised from the policy (VinePPO/treetune: the SFT model, head at zero so V starts at 0 and
the first updates fit the head before moving the backbone much) or from a reward model (OpenRLHF/
RTO: backbone and ``score`` head of an ``AutoModelForSequenceClassification``). Saved as the
backbone's ``save_pretrained`` folder plus ``value_head.pt``, so the same loading code serves a
tiny model and a 7B one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from itero.batch import RolloutBatch, position_ids
from itero.training.forward import compute_logprobs

HEAD_FILE = "value_head.pt"


class ValueModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)  # (B, L)

    # ------------------------------------------------------------------ building and saving
    @classmethod
    def from_policy(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> ValueModel:
        """Backbone of a causal LM folder; a saved critic folder (with ``value_head.pt``) keeps its head."""
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(str(path), dtype=dtype)
        head_file = Path(path) / HEAD_FILE
        state = torch.load(head_file, weights_only=True) if head_file.exists() else None
        # a critic started from a normalised reward model carries the normaliser's offset as a bias
        head = nn.Linear(backbone.config.hidden_size, 1, bias=state is not None and "bias" in state)
        if state is not None:
            head.load_state_dict(state)
        else:
            nn.init.zeros_(head.weight)
        return cls(backbone, head)

    @classmethod
    def from_reward_model(
        cls, path: str | Path, dtype: torch.dtype = torch.float32, score_norm: tuple[float, float] | None = None
    ) -> ValueModel:
        """Backbone and score head of a sequence classifier with one label (``itero train-rm`` output).

        ``score_norm``: the (mean, std) with which the run normalises this RM's scores into rewards. The
        head then predicts normalised scores, (w·h + b − mean) / std, so V(s) is on the scale of the
        returns it has to fit: with raw scores a critic whose RM scores spread more than the normalised
        rewards starts with a negative explained variance (OpenRLHF's critic normalises the same way).
        """
        from transformers import AutoModelForSequenceClassification

        rm = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype)
        if rm.config.num_labels != 1:
            raise ValueError(f"{path}: a reward model for a value head needs num_labels=1, has {rm.config.num_labels}")
        weight = rm.score.weight.data.float()
        bias = rm.score.bias.data.float() if rm.score.bias is not None else None
        if score_norm is not None:
            mean, std = score_norm
            weight = weight / std
            bias = ((bias if bias is not None else torch.zeros(1)) - mean) / std
        head = nn.Linear(rm.score.in_features, 1, bias=bias is not None)
        with torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)
        return cls(rm.base_model, head)

    def save_pretrained(self, path: str | Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """``state_dict``: this module's full tensors when they are not its own parameters (a sharded
        critic gathers them first)."""
        path = Path(path)
        if state_dict is None:
            self.backbone.save_pretrained(path)
            torch.save(self.head.state_dict(), path / HEAD_FILE)
            return

        def part(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}

        self.backbone.save_pretrained(path, state_dict=part("backbone."))
        torch.save(part("head."), path / HEAD_FILE)


def forward_values(model: ValueModel, batch: RolloutBatch, temperature: float = 1.0) -> Tensor:
    """V(s_t) for the state before each response token t, (B, R), 0 where response_mask is False.

    State s_t = prompt + response[:t], so V(s_t) is read at input position P−1+t (the position whose
    logits predict token t): the same alignment as the log-probs. ``temperature`` is unused; it keeps
    the learner's forward signature.
    """
    R = batch.response_ids.shape[1]
    input_ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    attention_mask = torch.cat([batch.prompt_mask.long(), torch.ones_like(batch.response_ids)], dim=1)
    values = model(input_ids, attention_mask, position_ids(batch.prompt_mask, R))[:, -R - 1 : -1]
    return values.float() * batch.response_mask


def compute_values(model: ValueModel, batch: RolloutBatch, micro_batch_size: int) -> Tensor:
    """Frozen V_old of a whole batch, micro-batched. (B, R) float32."""
    return compute_logprobs(model, batch, micro_batch_size, forward=forward_values)
