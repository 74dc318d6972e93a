"""DAPO's overlong reward shaping: a length penalty that grows inside a buffer before the length cap.

The length of a response is its number of response tokens, EOS included (``response_mask.sum(-1)``),
as verl's ``valid_response_length``; a response cut at the cap has the cap's length, so with
L_max = the generation cap it gets the full −1 (verl judges a truncated row by its length alone).
"""

from __future__ import annotations

from torch import Tensor


def overlong_penalty(response_lengths: Tensor, max_length: int, buffer: int, factor: float = 1.0) -> Tensor:
    """DAPO eq. 13 times verl's ``penalty_factor``. (B,) → (B,) float.

    R_len(y) = 0 if |y| ≤ L_max − L_cache; ((L_max − L_cache) − |y|) / L_cache if L_max − L_cache < |y| ≤ L_max;
    −1 if |y| > L_max. Below L_max this is verl's min(−(|y| − (L_max − L_cache)) / L_cache · factor, 0);
    past L_max (reachable only when L_max is below the generation cap) the paper's −1 holds where verl's
    line keeps falling.
    """
    if not 0 < buffer <= max_length:
        raise ValueError(f"the overlong buffer must be in (0, max_length]: got {buffer} with max_length {max_length}")
    expected = max_length - buffer  # the length every response may use for free
    linear = (expected - response_lengths.float()) / buffer
    return factor * linear.clamp(min=-1.0, max=0.0)
