"""The paper's claims about the bandit, checked on our own runs.

Rates are predicted in the test from the linearisation at the optimum, e_k = βθ_k − r_k:
σ(β(θ_k − θ_j)) − σ(r_k − r_j) ≈ s_kj (e_k − e_j) with s_kj = σ(r_kj)σ(−r_kj), so one SGD step
under pair weights μ maps e to (I − 2ηβ² L_{μ∘s}) e, L the graph Laplacian with weights μ_kj s_kj.
"""

import pytest
import torch

from itero.bandit import env
from itero.bandit.objective import exact_targets, preference_grad
from itero.bandit.samplers import SAMPLERS
from itero.bandit.simulate import SETTINGS, floor_step, run, run_all

R = env.rewards(torch.float64)
N, BETA = R.numel(), env.BETA
GAPS = R[:, None] - R[None, :]


def unif_eigen_factors(lr: float) -> torch.Tensor:
    s = torch.sigmoid(GAPS) * torch.sigmoid(-GAPS)
    laplacian = torch.diag(s.sum(1)) - s
    eigenvalues = torch.linalg.eigvalsh(laplacian)  # ascending; the first (≈ 0) is the constant shift of θ
    return 1 - 2 * lr * BETA**2 / N**2 * eigenvalues[1:]


def mix_r_normaliser() -> float:
    return float((2 + GAPS.exp() + (-GAPS).exp()).sum())


def test_unif_update_map_is_linearised_by_the_laplacian():
    """The Jacobian of our SGD step at π* has the eigen-factors predicted from the Laplacian."""
    lr = SETTINGS["exact"].lr
    win, lose = exact_targets(SAMPLERS["DPO-Unif"](None, R, BETA), R)

    def step(theta):
        return theta - lr * preference_grad(theta, win, lose, BETA)

    jacobian = torch.autograd.functional.jacobian(step, R / BETA)
    observed = torch.linalg.eigvalsh((jacobian + jacobian.T) / 2)
    predicted = torch.cat([torch.ones(1, dtype=torch.float64), unif_eigen_factors(lr)])
    torch.testing.assert_close(observed.sort().values, predicted.sort().values, rtol=0, atol=1e-10)


def test_unif_converges_linearly_at_the_largest_eigen_factor():
    lr = SETTINGS["exact"].lr
    rho = unif_eigen_factors(lr).abs().max().item()
    assert 0.8 < rho < 0.85  # an overshooting mode: the most negative factor, −0.829
    pd = run("DPO-Unif", SETTINGS["exact"], dtype=torch.float64, steps=130).param_diff
    # per-step ratios, geometric mean over 10 steps to average the oscillating modes
    ratios = [(pd[t + 10] / pd[t]).item() ** 0.1 for t in range(20, 121, 10)]
    # a cluster of factors just below ρ (−0.829 … −0.809) makes the ratio creep up to ρ from below
    assert all(b >= a - 1e-4 for a, b in zip(ratios, ratios[1:]))
    assert max(ratios) <= rho + 1e-3
    assert ratios[-1] == pytest.approx(rho, abs=0.01)


def test_mix_p_at_the_newton_step_squares_the_error():
    newton_lr = mix_r_normaliser() / (2 * BETA**2 * N)
    pd = run("DPO-Mix-P", SETTINGS["exact"], dtype=torch.float64, lr=newton_lr, steps=12).param_diff.tolist()
    pairs = [(a, b) for a, b in zip(pd, pd[1:]) if a < 0.1 and b > 1e-14]  # above the float64 floor (~1e-15)
    assert len(pairs) >= 3
    for a, b in pairs:
        assert b <= a**2
        assert torch.log(torch.tensor(b)) / torch.log(torch.tensor(a)) > 1.8  # order of convergence ≈ 2
    assert min(pd) < 1e-13


def test_mix_r_at_lr_10_is_linear_with_the_predicted_tiny_factor():
    """Mix-R cancels the BT curvature exactly, so its step factor is |1 − 2ηβ²N/Z| = 0.00698 at η = 10."""
    lr = SETTINGS["exact"].lr
    factor = abs(1 - 2 * lr * BETA**2 * N / mix_r_normaliser())
    pd = run("DPO-Mix-R", SETTINGS["exact"], dtype=torch.float64, steps=20).param_diff.tolist()
    ratios = [b / a for a, b in zip(pd, pd[1:]) if 1e-13 < b < a < 1e-5]
    assert len(ratios) >= 3
    assert all(r == pytest.approx(factor, rel=0.05) for r in ratios)


def test_exact_mixtures_reach_the_float32_floor_many_times_sooner():
    runs = run_all(SETTINGS["exact"], dtype=torch.float32)
    floors = {name: floor_step(r.param_diff) for name, r in runs.items()}
    assert all(f is not None and f.level < 1e-5 for f in floors.values())  # a few float32 ulps
    unif = floors["DPO-Unif"].step
    assert floors["DPO-Mix-P"].step * 5 <= unif
    assert floors["DPO-Mix-R"].step * 3 <= unif
    # Mix-R first moves away: its oracle weights put most mass on pairs with a wide reward gap
    assert runs["DPO-Mix-R"].param_diff[1] > runs["DPO-Mix-R"].param_diff[0]


def test_empirical_runs_level_off_at_a_noise_floor_mixtures_first():
    runs = run_all(SETTINGS["empirical"], dtype=torch.float32)
    floors = {name: floor_step(r.param_diff) for name, r in runs.items()}
    assert all(f is not None for f in floors.values())
    for name, f in floors.items():
        assert 1e-3 < f.level < 3e-2, name  # far above the float32 floor: sampling noise
        assert runs[name].param_diff[-1] < runs[name].param_diff[0] / 50
    assert floors["DPO-Mix-R"].step < floors["DPO-Unif"].step
    assert floors["DPO-Mix-P*"].step < floors["DPO-Unif"].step


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_runs_are_deterministic_per_seed_and_dtype(dtype):
    setting = SETTINGS["empirical"]
    first = run_all(setting, dtype=dtype, seed=7, steps=150)
    again = run_all(setting, dtype=dtype, seed=7, steps=150)
    other = run_all(setting, dtype=dtype, seed=8, steps=150)
    alone = run("DPO-Mix-R", setting, dtype=dtype, seed=7, steps=150)
    for name in setting.samplers:
        assert first[name].param_diff.dtype == dtype
        for field in ("param_diff", "value", "value_diff"):
            assert torch.equal(getattr(first[name], field), getattr(again[name], field))
        assert not torch.equal(first[name].param_diff[1:], other[name].param_diff[1:])
    # each sampler has its own stream: running it alone gives the same curve
    assert torch.equal(alone.param_diff, first["DPO-Mix-R"].param_diff)
