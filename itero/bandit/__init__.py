"""Tabular simulation of online DPO samplers (Shi, Zhou & Du, "The Crucial Role of Samplers in Online
DPO", ICLR 2025): 20 actions, BT preferences, a softmax policy trained by SGD under each sampler's
pair distribution, with exact (population) or sampled gradients.

Where this departs from the authors' script: rewards are hard-coded (their CPU draw), each sampler
has its own RNG stream (theirs share one, so a sampler's curve here does not depend on which others
run), sampled pairs are drawn as (pair, label) counts, the gradient is the closed form, and the
metrics include the state after the last update.
"""

from itero.bandit.env import BETA, REWARDS, metrics, optimal_value, param_diff, rewards, value
from itero.bandit.objective import exact_targets, preference_grad, preference_loss, sampled_targets
from itero.bandit.samplers import SAMPLERS
from itero.bandit.simulate import SETTINGS, Setting, Trajectory, floor_step, run, run_all

__all__ = [
    "BETA", "REWARDS", "SAMPLERS", "SETTINGS", "Setting", "Trajectory", "exact_targets", "floor_step",
    "metrics", "optimal_value", "param_diff", "preference_grad", "preference_loss", "rewards", "run",
    "run_all", "sampled_targets", "value",
]  # fmt: skip
