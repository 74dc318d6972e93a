"""On-policy distillation on hand numbers. The expected values are Thinking Machines' objective written out
here, as tinker-cookbook's ``tinker_cookbook/distillation/train_on_policy.py`` (``incorporate_kl_penalty``)
and Tinker's ``importance_sampling`` loss compute it:
    k_t = log π_student(y_t) − log π_T(y_t),   A_t = −c·Σ_{t'≥t} γ^{t'−t}·k_t'   (γ = 0: A_t = −c·k_t)
    loss = −Σ_t w_t·exp(log π_θ(y_t) − log π_old(y_t))·A_t    (w_t = 1/5: token-mean over 5 tokens)

Rows "ab" (3 tokens with EOS) and "c" (2 tokens with EOS, one padding column).
"""

import math
from types import SimpleNamespace

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ALGORITHMS, distill
from itero.config import load_config
from itero.core.masked import aggregation_weights
from itero.models.tiny import build_char_tokenizer, save_tiny
from itero.schema import ConfigError

OLD = [[-0.5, -1.0, -2.0], [-0.1, -3.0, 0.0]]  # log π_old = the student that sampled
TEACHER = [[-1.5, -1.0, -0.5], [-0.2, -1.0, 0.0]]
# k = OLD − TEACHER on the 5 tokens: [[1.0, 0.0, −1.5], [0.1, −2.0, (pad)]]
K = [[1.0, 0.0, -1.5], [0.1, -2.0, 0.0]]


def close(t, expected):
    torch.testing.assert_close(t, torch.tensor(expected, dtype=t.dtype), rtol=1e-6, atol=1e-6)


def batch_and_ctx(scores=(1.0, -0.5), group_ids=(0, 0)):
    _, tok = tiny()
    batch = text_batch(tok, ["p", "p"], ["ab", "c"], scores=list(scores), group_ids=list(group_ids))
    ctx = SimpleNamespace(
        logprobs=lambda role: {"old": torch.tensor(OLD), "teacher": torch.tensor(TEACHER)}[role], stats={}
    )
    return batch, ctx


def test_per_token_reverse_kl_and_its_advantages():
    batch, _ = batch_and_ctx()
    mask = batch.response_mask
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    k = distill.reverse_kl(torch.tensor(OLD), torch.tensor(TEACHER), mask)
    close(k, K)
    adv = distill.reverse_kl_advantages(torch.tensor(OLD), torch.tensor(TEACHER), mask, coef=1.0, discount=0.0)
    close(adv, [[-1.0, 0.0, 1.5], [-0.1, 2.0, 0.0]])
    # γ = 0.5: row 0: A_2 = 1.5, A_1 = 0 + 0.5·1.5 = 0.75, A_0 = −1 + 0.5·0 + 0.25·1.5 = −0.625;
    # row 1: A_1 = 2.0, A_0 = −0.1 + 0.5·2.0 = 0.9 (padding adds nothing); c = 2 doubles every entry
    adv = distill.reverse_kl_advantages(torch.tensor(OLD), torch.tensor(TEACHER), mask, coef=2.0, discount=0.5)
    close(adv, [[-1.25, 1.5, 3.0], [1.8, 4.0, 0.0]])


def test_importance_sampling_loss_and_gradient_by_hand():
    cfg = distill.Config(teacher_path="t")
    batch, ctx = batch_and_ctx()
    batch = distill.prepare(batch, cfg, ctx)
    assert ctx.stats["teacher_kl"] == pytest.approx((1.0 + 0.0 - 1.5 + 0.1 - 2.0) / 5)
    assert ctx.stats["teacher_logprob"] == pytest.approx((-1.5 - 1.0 - 0.5 - 0.2 - 1.0) / 5)
    delta = [[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]]  # log π_θ − log π_old after some update
    logp = (torch.tensor(OLD) + torch.tensor(delta)).requires_grad_(True)
    loss, metrics = distill.loss(batch, logp, cfg)
    adv = [[-1.0, 0.0, 1.5], [-0.1, 2.0]]
    terms = [(math.exp(d), a) for dd, aa in zip(delta, adv) for d, a in zip(dd, aa)]
    assert loss.item() == pytest.approx(-sum(r * a for r, a in terms) / 5, rel=1e-6)
    (grad,) = torch.autograd.grad(loss, logp)
    expected = [-r * a / 5 for r, a in terms]  # ∂/∂log π_θ of −ρ·A/5 = −ρ·A/5
    assert [g for row, m in zip(grad.tolist(), batch.response_mask.tolist()) for g, v in zip(row, m) if v] == (
        pytest.approx(expected, rel=1e-6)
    )
    assert grad[1, 2].item() == 0.0  # padding
    assert metrics["clip_fraction"] == 0.0  # never clipped


def test_on_policy_gradient_is_the_reverse_kl_gradient():
    """At θ = θ_old (ρ = 1) the gradient on log π_θ(y_t) is c·k_t/5: ∇ of Σ_t sg(k_t)·log π_θ(y_t) token-mean."""
    cfg = distill.Config(teacher_path="t", kl_coef=0.5)
    batch, ctx = batch_and_ctx()
    batch = distill.prepare(batch, cfg, ctx)
    logp = torch.tensor(OLD).requires_grad_(True)
    loss, _ = distill.loss(batch, logp, cfg)
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[0.5 * k / 5 for k in row] for row in K])


def test_teacher_likelihood_reward_and_task_reward():
    batch, ctx = batch_and_ctx(scores=(1.0, -0.5))
    mean_cfg = distill.Config(teacher_path="t", signal="teacher_likelihood")
    adv = distill.prepare(batch, mean_cfg, ctx).advantages
    # R = mean log π_T: (−1.5 − 1.0 − 0.5)/3 = −1.0, (−0.2 − 1.0)/2 = −0.6; group mean −0.8 → −0.2, +0.2
    close(adv, [[-0.2, -0.2, -0.2], [0.2, 0.2, 0.0]])
    sum_cfg = distill.Config(teacher_path="t", signal="teacher_likelihood", likelihood_agg="sum", kl_coef=2.0)
    adv = distill.prepare(batch, sum_cfg, ctx).advantages
    # R = −3.0, −1.2; mean −2.1 → −0.9, +0.9; c = 2
    close(adv, [[-1.8, -1.8, -1.8], [1.8, 1.8, 0.0]])
    mixed = distill.Config(teacher_path="t", task_reward_weight=0.5)
    adv = distill.prepare(batch, mixed, ctx).advantages
    # scores 1, −0.5: mean 0.25 → +0.75, −0.75, times 0.5, added to −k
    close(adv, [[-0.625, 0.375, 1.875], [-0.475, 1.625, 0.0]])
    alone = distill.group_centred(torch.tensor([-1.0, -0.6]), torch.tensor([0, 1]))  # a group of one: 0
    assert alone.tolist() == [0.0, 0.0]


def test_ppo_option_clips_the_ratio():
    cfg = distill.Config(teacher_path="t", loss="ppo", epsilon=0.2)
    batch, ctx = batch_and_ctx()
    batch = distill.prepare(batch, cfg, ctx)
    # token (1, 1): ρ = e^0.3 = 1.35 > 1.2 with A = 2 > 0: clipped, no gradient; others unclipped
    logp = (torch.tensor(OLD) + torch.tensor([[0.1, 0.0, -0.05], [0.0, 0.3, 0.0]])).requires_grad_(True)
    loss, metrics = distill.loss(batch, logp, cfg)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad[1, 1].item() == 0.0
    assert grad[0, 2].item() == pytest.approx(-math.exp(-0.05) * 1.5 / 5, rel=1e-6)
    assert metrics["clip_fraction"] == pytest.approx(1 / 5)


def test_models_preset_and_registration():
    cfg = distill.Config(teacher_path="/models/teacher")
    assert distill.models_needed(cfg) == {"old": "previous", "teacher": "/models/teacher"}
    assert distill.models_needed(cfg.model_copy(update={"beta": 0.1}))["reference"] == "initial"
    assert ALGORITHMS["distill"] is distill
    preset = load_config("configs/distill.yaml", [])
    assert preset.algorithm.name == "distill" and preset.algorithm.signal == "reverse_kl"
    assert preset.algorithm.kl_coef == 1.0 and preset.algorithm.kl_discount == 0.0
    with pytest.raises(ConfigError, match="teacher_path"):
        load_config(None, ["algorithm=distill"])
    with pytest.raises(ValueError, match="prepare context"):
        distill.prepare(batch_and_ctx()[0], cfg)
    assert (aggregation_weights(torch.ones(2, 2, dtype=torch.bool), cfg.loss_agg) == 0.25).all()


def test_a_teacher_with_another_tokenizer_is_refused_before_anything_is_written(tmp_path):
    from itero.runtime import preflight

    model, _ = tiny()
    other = build_char_tokenizer("0123456789+-*=")  # another vocabulary
    save_tiny(tmp_path / "teacher", model, other)
    overrides = ["algorithm=distill", f"algorithm.teacher_path={tmp_path / 'teacher'}", f"logging.run_dir={tmp_path}"]
    with pytest.raises(ConfigError, match="teacher model .* does not share the policy's tokenizer"):
        preflight(load_config(None, overrides))
    assert not (tmp_path / "quickstart").exists()
    _, same = tiny()
    save_tiny(tmp_path / "good", model, same)
    overrides[1] = f"algorithm.teacher_path={tmp_path / 'good'}"
    preflight(load_config(None, overrides))  # the same tokenizer passes
