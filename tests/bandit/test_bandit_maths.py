"""Pair weights, loss, gradient and metrics of the bandit on numbers worked out by hand.

The 3-action example uses r = (0, ln 2, 2 ln 2), so every e^{±(r_a − r_b)} is 1, 2, 4, 1/2 or 1/4
and every σ(r_a − r_b) is 1/2, 2/3, 4/5, 1/3 or 1/5.
"""

import math

import pytest
import torch

from itero.bandit import env
from itero.bandit.objective import (
    exact_targets,
    multinomial_counts,
    preference_grad,
    preference_loss,
    sampled_targets,
)
from itero.bandit.samplers import SAMPLERS, mix_p, mix_p_star, mix_r, resolve, unif

LN2 = math.log(2.0)
R3 = torch.tensor([0.0, LN2, 2 * LN2], dtype=torch.float64)


def close(a, b, tol=1e-12):
    as64 = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    torch.testing.assert_close(as64(a), as64(b), rtol=tol, atol=tol)


def test_unif_is_one_over_a_squared():
    close(unif(torch.zeros(3), R3, 3.0), torch.full((3, 3), 1 / 9, dtype=torch.float64))


def test_mix_r_by_hand():
    # 2 + e^g + e^−g: 4 on the diagonal, 2 + 2 + 1/2 = 4.5 for |g| = ln 2, 2 + 4 + 1/4 = 6.25 for |g| = 2 ln 2
    raw = torch.tensor([[4.0, 4.5, 6.25], [4.5, 4.0, 4.5], [6.25, 4.5, 4.0]], dtype=torch.float64)
    close(mix_r(torch.zeros(3), R3, 3.0), raw / 42.5)


def test_mix_p_uses_the_implicit_reward_not_r():
    beta = 2.0
    theta = R3 / beta  # β θ = (0, ln 2, 2 ln 2): the same gaps as R3
    expected = torch.tensor([[4, 4.5, 6.25], [4.5, 4, 4.5], [6.25, 4.5, 4]], dtype=torch.float64) / 42.5
    close(mix_p(theta, torch.zeros(3, dtype=torch.float64), beta), expected)


def test_mix_p_star_caps_at_the_widest_true_gap():
    beta = 2.0
    r = torch.tensor([0.0, LN2, 0.0], dtype=torch.float64)  # M = ln 2, cap 2 + 2 + 1/2 = 4.5
    expected = torch.tensor([[4.0, 4.5, 4.5], [4.5, 4.0, 4.5], [4.5, 4.5, 4.0]], dtype=torch.float64) / 39.0
    close(mix_p_star(R3 / beta, r, beta), expected)


def test_mix_r_is_the_adaptive_mixture_of_uniform_and_tilted_pairs():
    r = env.rewards(torch.float64)
    n = r.numel()
    s_plus, s_minus = r.exp().sum(), (-r).exp().sum()
    d = 2 * n**2 + 2 * s_plus * s_minus
    good, bad = torch.softmax(r, 0), torch.softmax(-r, 0)
    tilted = torch.outer(good, bad) + torch.outer(bad, good)
    mixture = (2 * n**2 / d) / n**2 + (s_plus * s_minus / d) * tilted
    close(mix_r(torch.zeros(n), r, env.BETA), mixture)


def test_theta_dependent_samplers_are_detached():
    theta = torch.randn(5, dtype=torch.float64, requires_grad=True)
    r = torch.randn(5, dtype=torch.float64)
    for fn in SAMPLERS.values():
        assert not fn(theta, r, 3.0).requires_grad


def test_sampler_names_resolve_without_shell_quoting():
    assert resolve("mix-p-star") == resolve("DPO-Mix-P*") == "DPO-Mix-P*"
    assert resolve("unif") == "DPO-Unif" and resolve("MIX_R") == "DPO-Mix-R"
    with pytest.raises(ValueError):
        resolve("gshf")


def test_loss_and_grad_at_uniform_policy_by_hand():
    # σ(0) = 1/2 everywhere, so L = ln 2; ∂L/∂θ_k = β·(2/9)·Σ_j (1/2 − σ(r_k − r_j))
    # k=0: 1/6 + 3/10 = 7/15; k=1: −1/6 + 1/6 = 0; k=2: −7/15
    beta = 3.0
    win, lose = exact_targets(unif(None, R3, beta), R3)
    theta = torch.zeros(3, dtype=torch.float64)
    close(preference_loss(theta, win, lose, beta), LN2)
    close(preference_grad(theta, win, lose, beta), [14 * beta / 135, 0.0, -14 * beta / 135])


def test_loss_at_the_optimum_is_the_label_entropy_and_grad_vanishes():
    # β = 1, θ = r: the model's preferences equal the labels. Per cell the loss is the binary entropy
    # H(1/2) = ln 2 (3 cells), H(1/3) = ln 3 − (2/3) ln 2 (4 cells), H(1/5) = ln 5 − (8/5) ln 2 (2 cells).
    win, lose = exact_targets(unif(None, R3, 1.0), R3)
    expected = (3 * LN2 + 4 * (math.log(3) - 2 / 3 * LN2) + 2 * (math.log(5) - 8 / 5 * LN2)) / 9
    close(preference_loss(R3, win, lose, 1.0), expected)
    close(preference_grad(R3, win, lose, 1.0), torch.zeros(3))


def test_one_ordered_pair_by_hand():
    # all mass on (0, 1): label σ(r_0 − r_1) = 1/3; with θ = (ln 3, 0, 0), β = 1, σ(βΔ_01) = 3/4
    weights = torch.zeros(3, 3, dtype=torch.float64)
    weights[0, 1] = 1.0
    win, lose = exact_targets(weights, R3)
    theta = torch.tensor([math.log(3), 0.0, 0.0], dtype=torch.float64)
    close(preference_loss(theta, win, lose, 1.0), -(1 / 3 * math.log(3 / 4) + 2 / 3 * math.log(1 / 4)))
    close(preference_grad(theta, win, lose, 1.0), [3 / 4 - 1 / 3, -(3 / 4 - 1 / 3), 0.0])


def test_pair_counts_give_the_sample_mean_of_hard_label_losses():
    # drawn: (0,1) a wins, (0,1) b wins, (2,0) a wins, (1,1) b wins; θ = (ln 3, 0, 0), β = 1
    # −log σ(ln 3) = ln 4/3, −log σ(−ln 3) = ln 4, −log σ(θ_2 − θ_0) = ln 4, −log σ(0) = ln 2
    win = torch.zeros(3, 3, dtype=torch.float64)
    lose = torch.zeros(3, 3, dtype=torch.float64)
    win[0, 1], lose[0, 1], win[2, 0], lose[1, 1] = 0.25, 0.25, 0.25, 0.25
    theta = torch.tensor([math.log(3), 0.0, 0.0], dtype=torch.float64)
    expected = (math.log(4 / 3) + math.log(4) + math.log(4) + LN2) / 4
    close(preference_loss(theta, win, lose, 1.0), expected)


def test_metrics_by_hand():
    beta = 1.0
    zero = torch.zeros(3, dtype=torch.float64)
    # uniform policy: Param Diff = mean |r_a − r_b| = (4 ln 2 + 2·2 ln 2)/9; V = mean r + β ln 3
    close(env.param_diff(zero, R3, beta), 8 * LN2 / 9)
    close(env.value(zero, R3, beta), LN2 + math.log(3))
    close(env.optimal_value(R3, beta), math.log(7))  # logsumexp(0, ln 2, ln 4) = ln 7
    pd, v, vd = env.metrics(R3 + 5.0, R3, beta)  # π* up to a constant shift of θ
    close(pd, 0.0)
    close(v, math.log(7))
    close(vd, 0.0)


def test_paper_reward_vector_constants():
    r = env.rewards(torch.float64)
    zero = torch.zeros(20, dtype=torch.float64)
    assert int(r.argmax()) == 2
    close(r.max() - r.min(), 4.732805, tol=1e-6)
    close(env.optimal_value(r, env.BETA), 9.0680834, tol=1e-7)
    close(env.param_diff(zero, r, env.BETA), 1.2076, tol=1e-4)
    close(env.optimal_value(r, env.BETA) - env.value(zero, r, env.BETA), 0.2079, tol=1e-4)


def test_multinomial_counts_sum_and_frequencies():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    counts = multinomial_counts(probs, n, g)
    assert counts.sum() == n
    assert counts[1] == 0 and counts[4] == 0
    sd = (probs * (1 - probs) / n).sqrt()
    assert ((counts / n - probs).abs() <= 5 * sd + 1e-12).all()


def test_sampled_targets_are_unbiased_estimates_of_exact_targets():
    r = env.rewards(torch.float64)
    win, lose = exact_targets(mix_r(None, r, env.BETA), r)
    g = torch.Generator().manual_seed(1)
    n, reps = 8192, 50
    draws = [sampled_targets(win, lose, n, g) for _ in range(reps)]
    w_hat = torch.stack([w for w, _ in draws]).mean(0)
    q_hat = torch.stack([q for _, q in draws]).mean(0)
    close(sum(w.sum() + q.sum() for w, q in draws) / reps, 1.0)
    for hat, p in ((w_hat, win), (q_hat, lose)):
        sd = (p * (1 - p) / (n * reps)).sqrt()
        assert ((hat - p).abs() <= 5 * sd + 1e-12).all()


def test_floor_step_on_synthetic_curves():
    from itero.bandit.simulate import floor_step

    t = torch.arange(101, dtype=torch.float64)
    decaying = 0.8**t
    assert floor_step(decaying) is None  # still falling at the end
    levelled = torch.maximum(0.8**t, torch.full_like(t, 1e-4))  # 0.8^t hits 2e-4 at t = 38.2
    floor = floor_step(levelled)
    assert floor.step == 39 and floor.level == pytest.approx(1e-4)
    assert floor_step(torch.tensor([1.2, 2.7, 2.1, 1.6])) is None  # flat but never fell
