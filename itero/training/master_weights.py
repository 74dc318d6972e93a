"""AdamW that keeps an fp32 master copy of low-precision parameters.

A bf16 weight of magnitude 0.02 has a resolution of about 1e-4, so an AdamW update of lr ≈ 1e-6 applied
to it directly rounds away: a bf16 model trained at the learning rates RL uses barely moves
(docs/results/bf16-weights.md). DeepSpeed's bf16 optimizer and FSDP's mixed precision keep fp32 weights
for the update and hand the model its bf16 copy; this optimizer does the same one parameter at a time:
the fp32 ``master``, ``exp_avg`` and ``exp_avg_sq`` live in the optimizer state (so checkpoints, resume
and the sharded state dict keyed by name carry them like any moment), the gradient is read in fp32, and
the parameter receives the updated master rounded to its own dtype. The update is torch's AdamW
(decoupled weight decay, bias-corrected moments, eps outside the square root).
"""

from __future__ import annotations

import math
from typing import Any

import torch


class MasterWeightAdamW(torch.optim.Optimizer):
    def __init__(
        self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, eps=1e-8
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            (beta1, beta2), lr, wd, eps = group["betas"], group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["master"] = p.detach().to(torch.float32, copy=True)
                    state["exp_avg"] = torch.zeros_like(state["master"])
                    state["exp_avg_sq"] = torch.zeros_like(state["master"])
                master, exp_avg, exp_avg_sq = state["master"], state["exp_avg"], state["exp_avg_sq"]
                grad = p.grad.to(torch.float32)  # one parameter's fp32 gradient at a time
                state["step"] += 1
                t = float(state["step"])
                master.mul_(1 - lr * wd)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                master.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**t))
                p.copy_(master)
        return None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, except that the master and the moments stay fp32 (torch casts every floating
        state tensor to its parameter's dtype)."""
        saved = state_dict["state"]
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        keys = [k for group in state_dict["param_groups"] for k in group["params"]]
        for p, k in zip(params, keys):
            for name in ("master", "exp_avg", "exp_avg_sq"):
                if k in saved and name in saved[k]:
                    self.state[p][name] = saved[k][name].to(device=p.device, dtype=torch.float32)


def needs_master_weights(params) -> bool:
    """Whether any trained parameter is stored in less than fp32 (``model.dtype: bfloat16``)."""
    return any(p.dtype in (torch.bfloat16, torch.float16) for p in params)
