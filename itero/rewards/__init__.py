"""Rewards: anything that turns (prompt, response) into an outcome score and per-token rewards."""

from itero.rewards.functions import RewardFunctionError, RewardFunctions, RewardTerm
from itero.rewards.math import MathReward, RewardFn
from itero.rewards.reward_model import RewardModel, RunningNorm, bradley_terry_loss

__all__ = [
    "MathReward",
    "RewardFn",
    "RewardFunctionError",
    "RewardFunctions",
    "RewardModel",
    "RewardTerm",
    "RunningNorm",
    "bradley_terry_loss",
]
