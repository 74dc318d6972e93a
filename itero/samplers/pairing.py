"""Pair selection within one prompt's n scored samples: one small function per strategy, one dict.

Every strategy maps ``(scores, lengths, rng, params)`` to a list of (chosen, rejected) positions with
a strictly higher score for the chosen one; an empty list means the prompt gives no pair (ties).
Sources: RLHFlow Online-DPO-R1 (max_min, max_random, max_max, max_min_p, random; first index on
ties), the samplers paper (mixed_max_min), VinePPO DPO-Positive (all_pairs: every accept × reject
combination, at most ``max_pairs_per_prompt`` drawn without replacement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Pair = tuple[int, int]


@dataclass
class PairingParams:
    length_penalty: float = 0.001  # λ_len of max_min_p: score − λ_len·len(characters)
    mixed_first_half_prob: float = 0.3  # mixed_max_min: P(pair from the first half of the samples)
    accept_threshold: float = 0.5  # all_pairs: accept = score ≥ threshold (VinePPO), reject = below
    max_pairs_per_prompt: int = 8  # all_pairs cap


def _draw(n: int, rng: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=rng))


def _best(scores: list[float], members: list[int]) -> int:
    return max(members, key=lambda i: (scores[i], -i))  # first index on ties


def _worst(scores: list[float], members: list[int]) -> int:
    return min(members, key=lambda i: (scores[i], i))


def _max_min_within(scores: list[float], members: list[int]) -> list[Pair]:
    if not members:
        return []
    best, worst = _best(scores, members), _worst(scores, members)
    return [(best, worst)] if scores[best] > scores[worst] else []


def max_min(scores, lengths, rng, p) -> list[Pair]:
    return _max_min_within(scores, list(range(len(scores))))


def max_max(scores, lengths, rng, p) -> list[Pair]:
    best = _best(scores, list(range(len(scores))))
    worse = [i for i in range(len(scores)) if scores[i] < scores[best]]
    return [(best, _best(scores, worse))] if worse else []


def max_random(scores, lengths, rng, p) -> list[Pair]:
    best = _best(scores, list(range(len(scores))))
    worse = [i for i in range(len(scores)) if scores[i] < scores[best]]
    return [(best, worse[_draw(len(worse), rng)])] if worse else []


def max_min_p(scores, lengths, rng, p) -> list[Pair]:
    """max_min on length-penalised scores: among equally right answers the shorter one is chosen."""
    penalised = [s - p.length_penalty * n for s, n in zip(scores, lengths)]
    return _max_min_within(penalised, list(range(len(scores))))


def random_pair(scores, lengths, rng, p) -> list[Pair]:
    """Two distinct samples drawn uniformly, ordered by score; a tie gives no pair."""
    if len(scores) < 2:
        return []
    i, j = torch.randperm(len(scores), generator=rng)[:2].tolist()
    if scores[i] == scores[j]:
        return []
    return [(i, j)] if scores[i] > scores[j] else [(j, i)]


def mixed_max_min(scores, lengths, rng, p) -> list[Pair]:
    """Best vs worst within the first half (probability ``mixed_first_half_prob``) or the second half.

    The samplers paper orders a prompt's samples [on-policy…, mixture-sampled…] and draws 0.3 : 0.7.
    """
    half = len(scores) // 2
    first = float(torch.rand((), generator=rng)) < p.mixed_first_half_prob
    return _max_min_within(scores, list(range(half)) if first else list(range(half, len(scores))))


def all_pairs(scores, lengths, rng, p) -> list[Pair]:
    accept = [i for i, s in enumerate(scores) if s >= p.accept_threshold]
    reject = [i for i, s in enumerate(scores) if s < p.accept_threshold]
    pairs = [(i, j) for i in accept for j in reject]
    if len(pairs) > p.max_pairs_per_prompt:
        keep = sorted(torch.randperm(len(pairs), generator=rng)[: p.max_pairs_per_prompt].tolist())
        pairs = [pairs[k] for k in keep]
    return pairs


PAIRINGS: dict[str, Callable[..., list[Pair]]] = {
    "max_min": max_min,
    "max_random": max_random,
    "max_max": max_max,
    "max_min_p": max_min_p,
    "random": random_pair,
    "mixed_max_min": mixed_max_min,
    "all_pairs": all_pairs,
}


def select_pairs(
    scores: list[float],
    group_ids: list[int],
    lengths: list[int],
    pairing: str,
    params: PairingParams,
    rng: torch.Generator,
) -> tuple[list[Pair], dict[str, float]]:
    """(chosen, rejected) batch rows of every group, groups in ascending id order, and tie statistics."""
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")
    groups: dict[int, list[int]] = {}
    for row, g in enumerate(group_ids):
        groups.setdefault(g, []).append(row)
    pairs: list[Pair] = []
    no_pair = 0
    for g in sorted(groups):
        rows = groups[g]
        found = PAIRINGS[pairing]([scores[r] for r in rows], [lengths[r] for r in rows], rng, params)
        no_pair += not found
        pairs += [(rows[c], rows[r]) for c, r in found]
    return pairs, {"pairs": len(pairs), "frac_prompts_no_pair": no_pair / max(len(groups), 1)}
