"""The vectorised closed-form gradient against a loop over pairs and against autograd."""

import torch

from itero.bandit import env
from itero.bandit.objective import exact_targets, preference_grad, preference_loss
from itero.bandit.samplers import SAMPLERS


def loop_exact_grad(theta, weights, r, beta):
    """∂L/∂θ_k = β Σ_j (μ_kj + μ_jk)[σ(β(θ_k − θ_j)) − σ(r_k − r_j)], one term at a time."""
    n = len(r)
    grad = [0.0] * n
    for k in range(n):
        for j in range(n):
            model = torch.sigmoid(beta * (theta[k] - theta[j])).item()
            label = torch.sigmoid(r[k] - r[j]).item()
            grad[k] += beta * (weights[k, j] + weights[j, k]).item() * (model - label)
    return torch.tensor(grad, dtype=torch.float64)


def test_exact_grad_vectorised_equals_loop_and_autograd():
    g = torch.Generator().manual_seed(0)
    r = env.rewards(torch.float64)
    theta = torch.randn(20, generator=g, dtype=torch.float64)
    asymmetric = torch.rand(20, 20, generator=g, dtype=torch.float64)
    for weights in [asymmetric / asymmetric.sum()] + [fn(theta, r, env.BETA) for fn in SAMPLERS.values()]:
        win, lose = exact_targets(weights, r)
        vectorised = preference_grad(theta, win, lose, env.BETA)
        looped = loop_exact_grad(theta, weights, r, env.BETA)
        torch.testing.assert_close(vectorised, looped, rtol=1e-12, atol=1e-12)
        leaf = theta.clone().requires_grad_(True)
        preference_loss(leaf, win, lose, env.BETA).backward()
        torch.testing.assert_close(vectorised, leaf.grad, rtol=1e-12, atol=1e-12)


def test_sampled_grad_equals_mean_over_individual_pairs():
    g = torch.Generator().manual_seed(1)
    n, num_pairs, beta = 6, 300, 3.0
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    first = torch.randint(n, (num_pairs,), generator=g)
    second = torch.randint(n, (num_pairs,), generator=g)
    first_wins = torch.rand(num_pairs, generator=g) < 0.5
    win = torch.zeros(n, n, dtype=torch.float64)
    lose = torch.zeros(n, n, dtype=torch.float64)
    for a, b, w in zip(first.tolist(), second.tolist(), first_wins.tolist()):
        (win if w else lose)[a, b] += 1.0 / num_pairs
    leaf = theta.clone().requires_grad_(True)
    sign = first_wins.double() * 2 - 1
    per_pair = -torch.nn.functional.logsigmoid(beta * sign * (leaf[first] - leaf[second]))
    per_pair.mean().backward()
    torch.testing.assert_close(preference_grad(theta, win, lose, beta), leaf.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(preference_loss(theta, win, lose, beta), per_pair.mean().detach())
