"""The KL the adaptive controller reads (verl's ``apply_kl_penalty``) and the controller's update, by hand."""

import pytest
import torch

from itero.core.kl import AdaptiveKLController, mean_sequence_kl

OLD = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, 0.0]])
REF = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -0.1, 5.0]])  # 5.0 sits on row 1's padding: must be ignored
MASK = torch.tensor([[True, True, True], [True, True, False]])


def test_mean_sequence_kl_is_the_mean_over_responses_of_each_token_mean():
    # verl: kld = kl_penalty(old, ref)·mask; current_kl = mean_b(masked_mean(kld, mask, axis=−1))
    # k1 = old − ref: row 0 (0.5, −1.0, 0.0) → mean −0.5/3; row 1 (0.2, −0.2) → 0; batch (−1/6 + 0)/2
    assert mean_sequence_kl(OLD, REF, MASK, "k1") == pytest.approx(-1 / 12, abs=1e-6)
    # k2 = ½x²: row 0 (0.125, 0.5, 0) → 0.625/3; row 1 (0.02, 0.02) → 0.02; batch (0.2083333 + 0.02)/2
    assert mean_sequence_kl(OLD, REF, MASK, "k2") == pytest.approx((0.625 / 3 + 0.02) / 2, abs=1e-6)
    # clamp at 0.3 on k2: row 0 (0.125, 0.3, 0) → 0.425/3; row 1 unchanged
    assert mean_sequence_kl(OLD, REF, MASK, "k2", clamp=0.3) == pytest.approx((0.425 / 3 + 0.02) / 2, abs=1e-6)
    # the per-token mean, not a mean over all tokens: (0.625 + 0.04)/5 = 0.133 would be another number
    assert mean_sequence_kl(OLD, REF, MASK, "k2") != pytest.approx(0.665 / 5, abs=1e-3)


def test_an_empty_response_counts_zero_as_in_verl():
    mask = torch.tensor([[True, True, True], [False, False, False]])
    # row 0's k2 mean 0.625/3, row 1 has no token: 0 (verl's masked_mean divides by 0 + 1e-8)
    assert mean_sequence_kl(OLD, REF, mask, "k2") == pytest.approx(0.625 / 6, abs=1e-6)


def test_ziegler_update_with_verl_defaults():
    # Ziegler et al. 2019 (verl core_algos.AdaptiveKLController.update):
    #   e = clip(KL / target − 1, −0.2, 0.2);  β ← β·(1 + e·n_steps / horizon)
    # verl's defaults: kl_coef 0.001, target_kl 0.1, horizon 10000; one batch of 512 samples
    ctl = AdaptiveKLController(init_coef=0.001, target=0.1, horizon=10_000)
    # KL 0.13: e = 0.3 → 0.2 (clipped); β = 0.001·(1 + 0.2·512/10000) = 0.001·1.01024
    assert ctl.update(0.13, 512) == pytest.approx(0.00101024, rel=1e-9)
    # KL 0.09: e = −0.1; β = 0.00101024·(1 − 0.1·0.0512) = 0.00101024·0.99488
    assert ctl.update(0.09, 512) == pytest.approx(0.00101024 * 0.99488, rel=1e-9)
    # a negative k1 estimate (KL −0.05): e = −1.5 → −0.2; β·(1 − 0.01024)
    assert ctl.update(-0.05, 512) == pytest.approx(0.00101024 * 0.99488 * 0.98976, rel=1e-9)
