"""KL estimators on hand numbers at x = log π − log π_ref ∈ {ln2, −ln2, 0}."""

import math

import pytest
import torch

from itero.core.kl import AdaptiveKLController, kl_estimate, kl_reward

LN2 = math.log(2.0)
LOGP = torch.tensor([[LN2, 0.0, 0.0]])
REF = torch.tensor([[0.0, LN2, 0.0]])  # x = (ln2, −ln2, 0)


def test_k1_k2_k3_hand_numbers():
    torch.testing.assert_close(kl_estimate(LOGP, REF, "k1"), torch.tensor([[0.6931472, -0.6931472, 0.0]]))
    # ½·(ln2)² = ½·0.4804530 = 0.2402265
    torch.testing.assert_close(kl_estimate(LOGP, REF, "k2"), torch.tensor([[0.2402265, 0.2402265, 0.0]]))
    # e^(−ln2) + ln2 − 1 = 0.5 + 0.6931472 − 1 = 0.1931472;  e^(ln2) − ln2 − 1 = 2 − 0.6931472 − 1 = 0.3068528
    torch.testing.assert_close(kl_estimate(LOGP, REF, "k3"), torch.tensor([[0.1931472, 0.3068528, 0.0]]))
    with pytest.raises(ValueError):
        kl_estimate(LOGP, REF, "k4")


def test_clamp_is_symmetric():
    torch.testing.assert_close(kl_estimate(LOGP, REF, "k1", clamp=0.25), torch.tensor([[0.25, -0.25, 0.0]]))
    torch.testing.assert_close(kl_estimate(LOGP, REF, "k3", clamp=0.25), torch.tensor([[0.1931472, 0.25, 0.0]]))
    # x = −30: k3 = e^30 − 31 ≈ 1.07e13 → 10 (VinePPO's [0, 10] and OpenRLHF's [−10, 10] agree for k3 ≥ 0)
    assert kl_estimate(torch.tensor([[-30.0]]), torch.tensor([[0.0]]), "k3", clamp=10.0).item() == 10.0


def test_k1_and_k3_are_unbiased_under_the_sampling_policy():
    # exact expectation over a 3-token vocabulary: E_π[k1] = E_π[k3] = KL(π‖π_ref)
    logp = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    ref = torch.log(torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64))
    exact = (logp.exp() * (logp - ref)).sum()
    for kind in ("k1", "k3"):
        k = kl_estimate(logp[None], ref[None], kind)[0]
        torch.testing.assert_close((logp.exp() * k).sum(), exact)


def test_kl_reward_masks_and_scales():
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    out = kl_reward(LOGP, REF, mask, coef=0.1, kind="k1")
    # −0.1·(ln2, −ln2, ·) = (−0.0693147, 0.0693147), padding → 0
    torch.testing.assert_close(out, torch.tensor([[-0.0693147, 0.0693147, 0.0]]))


def test_adaptive_kl_controller_hand_numbers():
    # TRL / OpenRLHF AdaptiveKLController.update, written out:
    #   proportional_error = clip(current / target − 1, −0.2, 0.2); value *= 1 + proportional_error·n_steps / horizon
    ctl = AdaptiveKLController(init_coef=0.1, target=6.0, horizon=10_000)
    # KL 9 over 1000 samples: 9/6 − 1 = 0.5, clipped to 0.2 → β·(1 + 0.2·0.1) = 0.1·1.02
    assert ctl.update(9.0, 1000) == pytest.approx(0.102)
    # KL 5.4: 5.4/6 − 1 = −0.1 → 0.102·(1 − 0.01) = 0.10098
    assert ctl.update(5.4, 1000) == pytest.approx(0.10098)
    # KL 0: −1 clipped to −0.2, over 5000 samples → 0.10098·(1 − 0.1) = 0.090882
    assert ctl.update(0.0, 5000) == pytest.approx(0.090882)
    # at the target β stays
    assert ctl.update(6.0, 1000) == pytest.approx(0.090882)
    resumed = AdaptiveKLController(init_coef=1.0, target=1.0, horizon=1.0)
    resumed.load_state_dict(ctl.state_dict())
    assert resumed.update(9.0, 1000) == pytest.approx(ctl.update(9.0, 1000)) == pytest.approx(0.090882 * 1.02)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=1.0)
