"""Rewards: anything that turns (prompt, response) into an outcome score and per-token rewards."""

from itero.rewards.math import MathReward, RewardFn

__all__ = ["MathReward", "RewardFn"]
