"""AdamW with fp32 master weights (itero/training/master_weights.py): torch's AdamW on fp32 numbers,
whatever dtype the parameters are stored in."""

import copy

import pytest
import torch
from helpers import tiny

from itero.training.learner import Learner, OptimConfig
from itero.training.master_weights import MasterWeightAdamW

HP = {"lr": 1e-2, "betas": (0.9, 0.95), "weight_decay": 0.1}


def grads(shape, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(steps)]


def run(opt_cls, param, gs, **kw):
    opt = opt_cls([param], **{**HP, **kw})
    for g in gs:
        param.grad = g.to(param.dtype)
        opt.step()
    return opt


def test_on_fp32_parameters_it_is_torchs_adamw():
    init = torch.randn(64, 16)
    ours, theirs = init.clone().requires_grad_(), init.clone().requires_grad_()
    gs = grads(init.shape, 6)
    run(MasterWeightAdamW, ours, gs)
    run(torch.optim.AdamW, theirs, gs, foreach=False)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_on_bf16_parameters_the_master_follows_the_fp32_trajectory_and_the_weights_are_its_rounding():
    init = torch.randn(64, 16) * 0.02
    low = init.bfloat16().requires_grad_()
    reference = low.detach().float().requires_grad_()  # fp32 AdamW from the same start, on the same gradients
    gs = [g.bfloat16().float() for g in grads(init.shape, 6)]
    opt = run(MasterWeightAdamW, low, gs, lr=1e-5)
    run(torch.optim.AdamW, reference, gs, lr=1e-5, foreach=False)
    master = opt.state[low]["master"]
    assert master.dtype == torch.float32 and torch.allclose(master, reference, rtol=1e-6, atol=1e-9)
    assert torch.equal(low.detach(), master.bfloat16())
    # plain AdamW on the bf16 weights loses most of these small updates to rounding
    plain = init.bfloat16().requires_grad_()
    run(torch.optim.AdamW, plain, gs, lr=1e-5)
    moved = lambda t: (t.detach().float() != init.bfloat16().float()).float().mean()  # noqa: E731
    assert moved(master) == 1.0 and moved(plain) < 0.5


def test_its_state_resumes_in_fp32_to_the_same_numbers():
    init = (torch.randn(32, 8) * 0.02).bfloat16()
    gs = grads(init.shape, 4)
    straight = init.clone().requires_grad_()
    run(MasterWeightAdamW, straight, gs, lr=1e-5)
    first = init.clone().requires_grad_()
    saved = copy.deepcopy(run(MasterWeightAdamW, first, gs[:2], lr=1e-5).state_dict())
    resumed = first.detach().clone().requires_grad_()  # the weights as the checkpoint holds them
    opt = MasterWeightAdamW([resumed], **{**HP, "lr": 1e-5})
    opt.load_state_dict(saved)
    assert opt.state[resumed]["master"].dtype == torch.float32  # torch would cast it to bf16
    for g in gs[2:]:
        resumed.grad = g.bfloat16()
        opt.step()
    assert torch.equal(resumed, straight)


@pytest.mark.parametrize("dtype, expected", [(torch.float32, torch.optim.AdamW), (torch.bfloat16, MasterWeightAdamW)])
def test_the_learner_gives_bf16_weights_master_copies(dtype, expected):
    model = tiny()[0].to(dtype)
    learner = Learner(model, OptimConfig(lr=1e-6, batch_size=1, micro_batch_size=1))
    learner.start_phase(10)
    assert type(learner.optimizer) is expected
