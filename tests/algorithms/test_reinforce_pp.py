import math

import pytest
from helpers import text_batch, tiny

from itero.algorithms import reinforce_pp


def test_prepare_group_mean_then_global_token_whitening():
    _, tok = tiny()
    # group 0 scores (1, 0), lengths 2 and 3; group 1 scores (0, 0), lengths 2 and 2
    batch = text_batch(tok, ["p"] * 4, ["a", "bb", "c", "d"], scores=[1, 0, 0, 0], group_ids=[0, 0, 1, 1])
    out = reinforce_pp.prepare(batch, reinforce_pp.Config())
    # centred per token: 0.5 ×2, −0.5 ×3, 0 ×4 → 9 tokens, mean −0.5/9
    # Σ(x − μ)² = Σx² − 9μ² = 1.25 − 0.25/9 = 1.222222; unbiased variance /8 = 0.152778
    mu, sd = -0.5 / 9, math.sqrt((1.25 - 0.25 / 9) / 8 + 1e-8)
    expected = [(0.5 - mu) / sd, (-0.5 - mu) / sd, -mu / sd, -mu / sd]  # 1.4213, −1.1371, 0.1421, 0.1421
    assert out.advantages[:, 0].tolist() == pytest.approx(expected, rel=1e-5)
    assert out.advantages[1].tolist() == pytest.approx([expected[1]] * 3, rel=1e-5)
    assert out.advantages[0, 2] == 0  # padding
    # the unanimous group is not neutral after whitening, so select keeps every row
    kept, stats = reinforce_pp.select(batch, reinforce_pp.Config())
    assert kept.batch_size == 4 and stats == {"frac_zero_variance_groups": 0.5}
    assert out.token_weights[out.response_mask].tolist() == pytest.approx([1 / 9] * 9)
