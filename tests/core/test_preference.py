"""Preference losses on hand-computed numbers, plus a plain-python check of each formula.

Hand-number tricks: −logσ(ln 3) = ln(4/3) since σ(ln 3) = 3/4; −logσ(0) = ln 2;
−logσ(x) = ln(1 + e^(−x)); and the smoothed loss −(1−ε)logσ(x) − ε·logσ(−x) = −logσ(x) + ε·x.
"""

import math
import random

import pytest
import torch

from itero.core.preference import (
    NEEDS_REFERENCE,
    NEEDS_SCORES,
    NEEDS_SEQ_KL,
    PREFERENCE_LOSSES,
    PairLogps,
    PreferenceLossParams,
    preference_metrics,
    sequential_kl,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def pairs(pc, pr, rc=None, rr=None, lw=(1.0, 1.0), ll=(1.0, 1.0), **extra):
    return PairLogps(
        policy_chosen=t(*pc),
        policy_rejected=t(*pr),
        ref_chosen=None if rc is None else t(*rc),
        ref_rejected=None if rr is None else t(*rr),
        chosen_lengths=t(*lw),
        rejected_lengths=t(*ll),
        **{k: t(*v) for k, v in extra.items()},
    )


# pair 0: h_w = ln3, h_l = −ln3, Δ = 2·ln3 → βΔ = ln3 at β = ½;  pair 1: Δ = 0.
LN3_PAIRS = dict(pc=(LN3 - 5.0, -3.0), rc=(-5.0, -3.0), pr=(-LN3 - 6.0, -3.0), rr=(-6.0, -3.0))


def test_sigmoid_dpo_and_cdpo():
    logps = pairs(**LN3_PAIRS)
    plain = PREFERENCE_LOSSES["sigmoid"](logps, PreferenceLossParams(beta=0.5))
    # −logσ(ln3) = −ln(0.75) = 0.2876821;  −logσ(0) = ln 2
    torch.testing.assert_close(plain, t(0.2876821, LN2), atol=1e-6, rtol=0)
    cdpo = PREFERENCE_LOSSES["sigmoid"](logps, PreferenceLossParams(beta=0.5, label_smoothing=0.1))
    # −0.9·ln(0.75) − 0.1·ln(0.25) = 0.2589139 + 0.1386294 = 0.3975433;  Δ = 0 → ln 2 whatever ε
    torch.testing.assert_close(cdpo, t(0.3975433, LN2), atol=1e-6, rtol=0)


def test_robust():
    out = PREFERENCE_LOSSES["robust"](pairs(**LN3_PAIRS), PreferenceLossParams(beta=0.5, label_smoothing=0.1))
    # (−0.9·ln 0.75 + 0.1·ln 0.25) / 0.8 = (0.2589139 − 0.1386294) / 0.8 = 0.1503556;  (0.9 − 0.1)·ln2 / 0.8 = ln2
    torch.testing.assert_close(out, t(0.1503556, LN2), atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        PREFERENCE_LOSSES["robust"](pairs(**LN3_PAIRS), PreferenceLossParams(label_smoothing=0.5))


def test_ipo_length_normalised_and_summed():
    # pair 0: h_w = −4 − (−6) = 2 over 2 tokens → 1;  h_l = −8 − (−4) = −4 over 4 tokens → −1
    # pair 1: h_w = 3 over 3 tokens → 1;  h_l = 3 over 1 token → 3
    logps = pairs(pc=(-4.0, 0.0), rc=(-6.0, -3.0), pr=(-8.0, 0.0), rr=(-4.0, -3.0), lw=(2.0, 3.0), ll=(4.0, 1.0))
    norm = PREFERENCE_LOSSES["ipo"](logps, PreferenceLossParams(beta=0.5))  # 1/(2β) = 1
    # (1 − (−1) − 1)² = 1;  (1 − 3 − 1)² = 9
    torch.testing.assert_close(norm, t(1.0, 9.0))
    summed = PREFERENCE_LOSSES["ipo"](logps, PreferenceLossParams(beta=0.5, ipo_length_normalize=False))
    # (2 − (−4) − 1)² = 25;  (3 − 3 − 1)² = 1
    torch.testing.assert_close(summed, t(25.0, 1.0))


def test_rev_kl_soft_label():
    # both pairs βΔ = ln3 (σ = 3/4). pair 0: r_w − r_l = 0 → p* = ½; pair 1: (ln3/2 − 0)·2 = ln3 → p* = ¾
    logps = pairs(
        pc=(LN3 - 5.0, LN3 - 5.0),
        rc=(-5.0, -5.0),
        pr=(-LN3 - 6.0, -LN3 - 6.0),
        rr=(-6.0, -6.0),
        chosen_scores=(1.0, LN3 / 2),
        rejected_scores=(1.0, 0.0),
    )
    out = PREFERENCE_LOSSES["rev_kl"](logps, PreferenceLossParams(beta=0.5, margin_scale=2.0))
    # −½·ln¾ − ½·ln¼ = ½(0.2876821 + 1.3862944) = 0.8369882
    # −¾·ln¾ − ¼·ln¼ = 0.2157616 + 0.3465736 = 0.5623351
    torch.testing.assert_close(out, t(0.8369882, 0.5623351), atol=1e-6, rtol=0)


def test_dpop_penalty_inside_beta():
    # pair 0: ℓ_θ(y_w) = −4 > ℓ_ref = −5 → no penalty; Δ = 1 − (−1) = 2; β·z = 0.5·2 = 1
    # pair 1: ℓ_θ(y_w) = −6 < ℓ_ref = −5 → penalty 1; Δ = −1 − (−3) = 2; z = 2 − λ·1 = 0
    logps = pairs(pc=(-4.0, -6.0), rc=(-5.0, -5.0), pr=(-6.0, -8.0), rr=(-5.0, -5.0))
    out = PREFERENCE_LOSSES["dpop"](logps, PreferenceLossParams(beta=0.5, dpop_lambda=2.0))
    # ln(1 + e^−1) = ln 1.3678794 = 0.3132617;  ln 2
    torch.testing.assert_close(out, t(0.3132617, LN2), atol=1e-6, rtol=0)


def test_rdpo_length_term():
    # pair 0: Δ = 0, |y_w| − |y_l| = 3 − 1 = 2 → x = 0 + 0.25·2 = 0.5
    # pair 1: βΔ = 0.5·2 = 1, |y_w| − |y_l| = 1 − 5 = −4 → x = 1 − 1 = 0
    logps = pairs(pc=(-5.0, -4.0), rc=(-5.0, -5.0), pr=(-5.0, -6.0), rr=(-5.0, -5.0), lw=(3.0, 1.0), ll=(1.0, 5.0))
    out = PREFERENCE_LOSSES["rdpo"](logps, PreferenceLossParams(beta=0.5, rdpo_alpha=0.25))
    # ln(1 + e^−0.5) = ln 1.6065307 = 0.4740770;  ln 2
    torch.testing.assert_close(out, t(0.4740770, LN2), atol=1e-6, rtol=0)


def test_simpo_reference_free_length_averaged():
    # pair 0: −2/2 − (−6/3) − 0.5 = −1 + 2 − 0.5 = 0.5 → βu = 1
    # pair 1: −3/1 − (−5/2) − 0.5 = −3 + 2.5 − 0.5 = −1 → βu = −2
    logps = pairs(pc=(-2.0, -3.0), pr=(-6.0, -5.0), lw=(2.0, 1.0), ll=(3.0, 2.0))
    out = PREFERENCE_LOSSES["simpo"](logps, PreferenceLossParams(beta=2.0, simpo_gamma_beta_ratio=0.5))
    # ln(1 + e^−1) = 0.3132617;  ln(1 + e^2) = 2.1269280
    torch.testing.assert_close(out, t(0.3132617, 2.1269280), atol=1e-6, rtol=0)
    smooth = PREFERENCE_LOSSES["simpo"](logps, PreferenceLossParams(beta=2.0, label_smoothing=0.1))
    # −logσ(x) + ε·x: 0.3132617 + 0.1 = 0.4132617;  2.1269280 − 0.2 = 1.9269280
    torch.testing.assert_close(smooth, t(0.4132617, 1.9269280), atol=1e-6, rtol=0)


TDPO_PAIRS = dict(
    pc=(-4.0, -5.0),
    rc=(-5.0, -5.0),
    pr=(-6.0, -5.0),
    rr=(-5.0, -5.0),  # Δ = 2, 0
    chosen_seq_kl=(0.5, 1.0),
    rejected_seq_kl=(1.5, 1.0),
)


def test_tdpo1_and_tdpo2():
    logps = pairs(**TDPO_PAIRS)
    one = PREFERENCE_LOSSES["tdpo1"](logps, PreferenceLossParams(beta=0.5))
    # pair 0: z = 2 − (1.5 − 0.5) = 1 → βz = 0.5 → ln(1 + e^−0.5) = 0.4740770;  pair 1: z = 0 → ln 2
    torch.testing.assert_close(one, t(0.4740770, LN2), atol=1e-6, rtol=0)
    two = PREFERENCE_LOSSES["tdpo2"](logps, PreferenceLossParams(beta=0.5, tdpo_alpha=0.5))
    # pair 0: z = 2 − 0.5·(1.5 − 0.5) = 1.5 → βz = 0.75 → ln(1 + 0.4723666) = 0.3868710;  pair 1: ln 2
    torch.testing.assert_close(two, t(0.3868710, LN2), atol=1e-6, rtol=0)


def test_tdpo2_stops_gradient_on_chosen_seq_kl():
    logps = pairs(**TDPO_PAIRS)
    logps.chosen_seq_kl.requires_grad_(True)
    logps.rejected_seq_kl.requires_grad_(True)
    p = PreferenceLossParams(beta=0.5, tdpo_alpha=0.5)
    loss = PREFERENCE_LOSSES["tdpo2"](logps, p).sum()
    g_w, g_l = torch.autograd.grad(loss, [logps.chosen_seq_kl, logps.rejected_seq_kl], allow_unused=True)
    assert g_w is None or torch.all(g_w == 0)
    # dL/dS_l = α·β·σ(−βz): pair 1 (z = 0) → 0.5·0.5·0.5 = 0.125
    assert g_l[1].item() == pytest.approx(0.125)
    # TDPO1 keeps it: dL/dS_w = −β·σ(−βz), pair 1 → −0.25
    g_w1 = torch.autograd.grad(PREFERENCE_LOSSES["tdpo1"](logps, p).sum(), logps.chosen_seq_kl)[0]
    assert g_w1[1].item() == pytest.approx(-0.25)


# ---- independent plain-python formulas (scalars, math module only) ----


def _nls(x):  # −logσ(x)
    return math.log1p(math.exp(-x)) if x > 0 else -x + math.log1p(math.exp(x))


def _smooth(x, eps):
    return (1 - eps) * _nls(x) + eps * _nls(-x)


def _direct(name, d, p):
    hw, hl = d["pc"] - d.get("rc", 0.0), d["pr"] - d.get("rr", 0.0)
    D, b, eps = hw - hl, p.beta, p.label_smoothing
    if name == "sigmoid":
        return _smooth(b * D, eps)
    if name == "robust":
        return ((1 - eps) * _nls(b * D) - eps * _nls(-b * D)) / (1 - 2 * eps)
    if name == "ipo":
        return (hw / d["lw"] - hl / d["ll"] - 1 / (2 * b)) ** 2
    if name == "rev_kl":
        q = 1 / (1 + math.exp(-(d["sw"] - d["sl"]) * p.margin_scale))
        return q * _nls(b * D) + (1 - q) * _nls(-b * D)
    if name == "dpop":
        return _smooth(b * (D - p.dpop_lambda * max(0.0, d["rc"] - d["pc"])), eps)
    if name == "rdpo":
        return _smooth(b * D + p.rdpo_alpha * (d["lw"] - d["ll"]), eps)
    if name == "simpo":
        return _smooth(b * (d["pc"] / d["lw"] - d["pr"] / d["ll"] - p.simpo_gamma_beta_ratio), eps)
    if name == "tdpo1":
        return _smooth(b * (D - (d["kl_l"] - d["kl_w"])), eps)
    if name == "tdpo2":
        return _smooth(b * (D - p.tdpo_alpha * (d["kl_l"] - d["kl_w"])), eps)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    if name == "hinge":
        return max(0.0, 1 - b * D)
    if name == "apo_zero":
        return (1 - sig(b * hw)) + sig(b * hl)
    if name == "apo_down":
        return sig(b * hw) + (1 - sig(b * D))
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(PREFERENCE_LOSSES))
def test_matches_direct_python_formula(name):
    rng = random.Random(name)  # str seeds are deterministic across runs
    rows = [
        {k: rng.uniform(-30, -1) for k in ("pc", "pr", "rc", "rr")}
        | {"lw": float(rng.randint(1, 20)), "ll": float(rng.randint(1, 20))}
        | {"sw": rng.uniform(-2, 2), "sl": rng.uniform(-2, 2), "kl_w": rng.uniform(0, 3), "kl_l": rng.uniform(0, 3)}
        for _ in range(2)
    ]
    if name == "dpop":  # one pair on each side of the max(0, ·) kink
        rows[0]["pc"], rows[0]["rc"], rows[1]["pc"], rows[1]["rc"] = -5.0, -7.0, -9.0, -6.0
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    logps = pairs(
        pc=col("pc"),
        pr=col("pr"),
        rc=None if name == "simpo" else col("rc"),
        rr=None if name == "simpo" else col("rr"),
        lw=col("lw"),
        ll=col("ll"),
        chosen_scores=col("sw"),
        rejected_scores=col("sl"),
        chosen_seq_kl=col("kl_w"),
        rejected_seq_kl=col("kl_l"),
    )
    p = PreferenceLossParams(
        beta=0.3, label_smoothing=0.15, dpop_lambda=5.0, rdpo_alpha=0.1, tdpo_alpha=0.7, margin_scale=3.0
    )
    if name == "simpo":
        rows = [{k: v for k, v in r.items() if k not in ("rc", "rr")} for r in rows]
    expected = [_direct(name, r, p) for r in rows]
    torch.testing.assert_close(PREFERENCE_LOSSES[name](logps, p), t(*expected), atol=1e-9, rtol=1e-9)


def test_requirement_sets():
    assert NEEDS_REFERENCE == set(PREFERENCE_LOSSES) - {"simpo"}
    assert NEEDS_SCORES == {"rev_kl"} and NEEDS_SEQ_KL == {"tdpo1", "tdpo2"}
    with pytest.raises(ValueError, match="reference"):
        PREFERENCE_LOSSES["sigmoid"](pairs(pc=(-1.0,), pr=(-2.0,), lw=(1.0,), ll=(1.0,)), PreferenceLossParams())


def test_preference_metrics():
    # h_w = (1, −1), h_l = (−1, 0), β = ½
    logps = pairs(pc=(-4.0, -6.0), rc=(-5.0, -5.0), pr=(-6.0, -2.0), rr=(-5.0, -2.0))
    m = preference_metrics(logps, beta=0.5)
    assert m["rewards/chosen"] == pytest.approx(0.0)  # ½·(1 − 1)/2
    assert m["rewards/rejected"] == pytest.approx(-0.25)  # ½·(−1 + 0)/2
    assert m["rewards/accuracy"] == pytest.approx(0.5)  # 1 > −1 yes, −1 > 0 no
    assert m["rewards/margin"] == pytest.approx(0.25)  # ½·(2 + (−1))/2
    assert m["logps/chosen"] == pytest.approx(-5.0) and m["logps/rejected"] == pytest.approx(-4.0)
    free = preference_metrics(pairs(pc=(-1.0, -3.0), pr=(-2.0, -1.0)), beta=2.0)  # reference-free: h = ℓ_θ
    assert free["rewards/chosen"] == pytest.approx(-4.0)  # 2·(−1 − 3)/2
    assert free["rewards/accuracy"] == pytest.approx(0.5)
    assert free["rewards/margin"] == pytest.approx(-1.0)  # 2·((−1 + 2) + (−3 + 1))/2 = 2·(1 − 2)/2


def test_sequential_kl_hand_numbers_and_gradient():
    # position A: π_ref = (½, ½), π_θ = (¾, ¼) → KL = ½ ln(½/¾) + ½ ln(½/¼) = ½ ln(4/3) = 0.1438410
    a_ref, a_pol, same = [0.0, 0.0], [LN3, 0.0], [0.3, -0.2]
    ref = t(a_ref, same, a_ref, a_ref, a_ref, a_ref).view(2, 3, 2)
    pol = t(a_pol, same, [5.0, -5.0], a_pol, a_pol, a_pol).view(2, 3, 2).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)  # row 0's last position is padding
    kl = sequential_kl(pol, ref, mask, chunk_size=2)
    # row 0: 0.1438410 + 0 (same distribution);  row 1: 3 × 0.1438410 = 0.4315231
    torch.testing.assert_close(kl, torch.tensor([0.1438410, 0.4315231]), atol=1e-6, rtol=0)
    kl.sum().backward()
    # ∂KL/∂z_θ = m·(π_θ − π_ref) = (¾ − ½, ¼ − ½) = (0.25, −0.25) at A; 0 where masked
    torch.testing.assert_close(pol.grad[0, 0], t(0.25, -0.25))
    torch.testing.assert_close(pol.grad[0, 2], t(0.0, 0.0))


def test_sequential_kl_chunking_matches_direct():
    g = torch.Generator().manual_seed(0)
    pol = torch.randn(3, 7, 11, generator=g, requires_grad=True)
    ref = torch.randn(3, 7, 11, generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.3
    direct = (ref.softmax(-1) * (ref.log_softmax(-1) - pol.log_softmax(-1))).sum(-1)
    direct = (direct * mask).sum(-1)
    (g_direct,) = torch.autograd.grad(direct.sum(), pol)
    for chunk in (1, 3, 128):
        out = sequential_kl(pol, ref, mask, chunk_size=chunk)
        torch.testing.assert_close(out, direct)
        torch.testing.assert_close(torch.autograd.grad(out.sum(), pol)[0], g_direct)


# TRL trl/trainer/dpo_trainer.py (dpo_loss), written out per pair with chosen_logratios h_w and
# rejected_logratios h_l: hinge relu(1 − β·(h_w − h_l)); apo_zero (1 − σ(β·h_w)) + σ(β·h_l);
# apo_down σ(β·h_w) + (1 − σ(β·(h_w − h_l))).
# Pair 0: h_w = ln 3, h_l = 0 (Δ = ln 3); pair 1: h_w = 0, h_l = ln 3 (Δ = −ln 3); β = 1, so
# σ(ln 3) = 3/4, σ(0) = 1/2, σ(−ln 3) = 1/4.
APO_PAIRS = dict(pc=(LN3, 0.0), pr=(0.0, LN3), rc=(0.0, 0.0), rr=(0.0, 0.0))


def test_hinge_slic():
    out = PREFERENCE_LOSSES["hinge"](pairs(**APO_PAIRS), PreferenceLossParams(beta=1.0))
    # max(0, 1 − ln 3) = 0 (ln 3 = 1.0986 > 1); max(0, 1 + ln 3) = 2.0986
    torch.testing.assert_close(out, t(0.0, 1.0 + LN3))
    half = PREFERENCE_LOSSES["hinge"](pairs(**APO_PAIRS), PreferenceLossParams(beta=0.5))
    torch.testing.assert_close(half, t(1.0 - 0.5 * LN3, 1.0 + 0.5 * LN3))


def test_apo_zero_and_apo_down():
    zero = PREFERENCE_LOSSES["apo_zero"](pairs(**APO_PAIRS), PreferenceLossParams(beta=1.0))
    # pair 0: (1 − 3/4) + 1/2 = 3/4; pair 1: (1 − 1/2) + 3/4 = 5/4
    torch.testing.assert_close(zero, t(0.75, 1.25))
    down = PREFERENCE_LOSSES["apo_down"](pairs(**APO_PAIRS), PreferenceLossParams(beta=1.0))
    # pair 0: 3/4 + (1 − 3/4) = 1; pair 1: 1/2 + (1 − 1/4) = 5/4
    torch.testing.assert_close(down, t(1.0, 1.25))
    assert {"hinge", "apo_zero", "apo_down"} <= NEEDS_REFERENCE


def test_weighted_preference_loss():
    from itero.core.preference import weighted_preference_loss

    p = PreferenceLossParams(beta=1.0)
    out = weighted_preference_loss(pairs(**APO_PAIRS), p, ["apo_zero", "apo_down"], [2.0, 0.5])
    torch.testing.assert_close(out, t(2.0 * 0.75 + 0.5 * 1.0, 2.0 * 1.25 + 0.5 * 1.25))
    torch.testing.assert_close(weighted_preference_loss(pairs(**APO_PAIRS), p, ["apo_zero"]), t(0.75, 1.25))
    with pytest.raises(ValueError):
        weighted_preference_loss(pairs(**APO_PAIRS), p, ["apo_zero"], [1.0, 2.0])
