"""Truncated importance sampling weights on numbers computed by hand."""

import math

import pytest
import torch

from itero.core.importance import tis_weights


def test_tis_weights_by_hand():
    old = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -3.0, 0.0]])
    sampler = torch.tensor([[-1.0, -2.5, -3.0], [-0.2, -1.0, -7.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    w = tis_weights(old, sampler, mask, cap=2.0)
    # exp(0) = 1; exp(0.5) = 1.6487; exp(2.5) = 12.18 -> capped at 2; exp(0.1) = 1.1052; exp(-2) = 0.1353; padding -> 0
    expected = torch.tensor([[1.0, 1.6487213, 2.0], [1.1051709, 0.1353353, 0.0]])
    assert torch.allclose(w, expected, atol=1e-6)
    assert w.dtype == torch.float32 and not w.requires_grad


def test_tis_weights_never_overflow_and_ignore_padding_garbage():
    old = torch.tensor([[0.0, float("nan")]])
    sampler = torch.tensor([[-1000.0, 0.0]])  # the engine gave the first token almost no probability
    w = tis_weights(old, sampler, torch.tensor([[True, False]]), cap=3.0)
    assert w.tolist() == [[pytest.approx(3.0), 0.0]]
    assert math.isfinite(w.sum().item())


def test_tis_weights_are_constants_and_checked():
    old = torch.tensor([[-1.0]], requires_grad=True)
    assert not tis_weights(old, torch.tensor([[-1.5]]), torch.tensor([[True]]), cap=2.0).requires_grad
    with pytest.raises(ValueError, match="cap"):
        tis_weights(old, old, torch.tensor([[True]]), cap=0.0)
    with pytest.raises(ValueError, match="same"):
        tis_weights(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool), cap=2.0)
