import dataclasses
import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import dpo
from itero.core.preference import PreferenceLossParams
from itero.samplers.pairing import PairingParams


def rng():
    return torch.Generator().manual_seed(0)


def make_groups():
    _, tok = tiny()
    responses = ["a", "bb", "ccc", "d", "ee", "f"]
    return text_batch(tok, ["p"] * 6, responses, scores=[1, -1, 0, 1, 1, 1], group_ids=[7, 7, 7, 3, 3, 3])


def test_select_interleaves_pairs_and_counts_ties():
    batch, stats = dpo.select(make_groups(), dpo.Config())
    assert batch.response_texts == ["a", "bb"]  # group 3 ties everywhere and is dropped
    assert stats == {"pairs": 1, "frac_prompts_no_pair": 0.5}


def test_select_all_pairs_gives_several_pairs_per_prompt():
    batch, stats = dpo.select(make_groups(), dpo.Config(pairing="all_pairs", accept_threshold=0.0))
    assert batch.response_texts == ["a", "bb", "ccc", "bb"]  # group 7: accept a, ccc × reject bb
    assert stats["pairs"] == 2


def test_unknown_pairing_fails_at_validation():
    with pytest.raises(ValueError, match="unknown pairing 'best'"):
        dpo.Config(pairing="best")


def test_prepare_weights_pairs_and_chosen_tokens():
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 4, ["ab", "c", "d", "efg"], scores=[1, 0, 1, 0])
    out = dpo.prepare(batch, dpo.Config())
    assert out.seq_weights.tolist() == [0.5, 0.0, 0.5, 0.0]
    # chosen rows 0 and 2 have 3 and 2 tokens (EOS included): token-mean over 5 tokens
    assert out.token_weights[0].tolist()[:3] == pytest.approx([0.2] * 3) and out.token_weights[1].sum() == 0
    assert math.isclose(float(out.token_weights.sum()), 1.0, rel_tol=1e-6)


def test_per_sequence_nll_weights_each_chosen_response_equally():
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 4, ["ab", "c", "d", "efg"], scores=[1, 0, 1, 0])
    out = dpo.prepare(batch, dpo.Config(nll_per_sequence=True))
    # chosen rows 0 ("ab" + EOS: 3 tokens) and 2 ("d" + EOS: 2 tokens), each half of the total
    assert out.token_weights[0].tolist()[:3] == pytest.approx([1 / 6] * 3)
    assert out.token_weights[2].tolist()[:2] == pytest.approx([1 / 4] * 2)
    assert out.token_weights[1].sum() == 0 and math.isclose(float(out.token_weights.sum()), 1.0, rel_tol=1e-6)


def test_loss_matches_hand_computation():
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 2, ["a", "b"], scores=[1, 0])  # one pair, 2 tokens each (char + EOS)
    batch = dpo.prepare(batch, dpo.Config()).replace(ref_logprobs=torch.tensor([[-1.0, -1.0], [-2.0, -1.0]]))
    logprobs = torch.tensor([[-0.5, -1.0], [-2.5, -1.5]])
    cfg = dpo.Config(beta=0.5, label_smoothing=0.1, nll_weight=2.0)
    loss, metrics = dpo.loss(batch, logprobs, cfg)
    # h_w = -1.5 - (-2) = 0.5 ; h_l = -4 - (-3) = -1 ; Δ = 1.5 ; βΔ = 0.75
    # logσ(0.75) = -log(1 + e^-0.75) = -0.386871 ; logσ(-0.75) = -log(1 + e^0.75) = -1.136871
    # cDPO = 0.9·0.386871 + 0.1·1.136871 = 0.461871
    # NLL (token-mean over chosen) = (0.5 + 1.0) / 2 = 0.75 → total = 0.461871 + 2·0.75
    assert loss.item() == pytest.approx(0.461871 + 1.5, abs=1e-5)
    assert metrics["rewards/chosen"] == pytest.approx(0.25) and metrics["rewards/rejected"] == pytest.approx(-0.5)
    assert metrics["rewards/accuracy"] == 1.0 and metrics["nll"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "name", ["sigmoid", "robust", "ipo", "rev_kl", "dpop", "rdpo", "simpo", "hinge", "apo_zero", "apo_down"]
)
def test_every_wired_loss_trains_through_the_algorithm(name):
    from itero.core.preference import PREFERENCE_LOSSES

    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 4, ["ab", "c", "de", "f"], scores=[1.0, -1.0, 1.0, -0.5])
    batch = dpo.prepare(batch, dpo.Config()).replace(ref_logprobs=torch.full((4, 3), -1.0) * batch.response_mask)
    logprobs = torch.full((4, 3), -0.8, requires_grad=True)
    cfg = dpo.Config(loss=name, beta=0.5)
    loss, metrics = dpo.loss(batch, logprobs * batch.response_mask, cfg)
    # the algorithm's loss is the pair-mean of the core function on the same summed log-probs
    direct = PREFERENCE_LOSSES[name](dpo.pair_logps(batch, logprobs * batch.response_mask), cfg.loss_params()).mean()
    assert loss.item() == pytest.approx(direct.item(), rel=1e-6)
    loss.backward()
    assert logprobs.grad.abs().sum() > 0 and "rewards/margin" in metrics
    assert cfg.needs_reference == (name != "simpo")


def test_unknown_loss_fails_at_validation_and_tdpo_is_wired():
    from itero.config import load_config
    from itero.schema import ConfigError

    with pytest.raises(ConfigError, match="unknown loss 'dpo2'; choose one of sigmoid, robust, ipo"):
        load_config(None, ["algorithm=dpo", "algorithm.loss=dpo2"])
    assert load_config(None, ["algorithm=dpo", "algorithm.loss=tdpo2"]).algorithm.needs_reference_logits
    with pytest.raises(ConfigError, match="loss 'sigmoid' needs a reference model but reference is 'none'.*: simpo"):
        load_config(None, ["algorithm=dpo", "algorithm.reference=none"])
    cfg = load_config(None, ["algorithm=dpo", "algorithm.reference=none", "algorithm.loss=simpo"]).algorithm
    assert not cfg.needs_reference


@pytest.mark.parametrize("name", ["tdpo1", "tdpo2"])
def test_tdpo_through_the_learner_equals_a_direct_computation(name):
    """The learner hands its logits to a needs_logits loss; the result is TDPO on hand-built pieces."""
    import copy

    import torch.nn.functional as F

    from itero.core.preference import PREFERENCE_LOSSES, PairLogps
    from itero.training.forward import forward_logits
    from itero.training.learner import Learner, OptimConfig

    policy, tok = tiny(seed=0)
    ref, _ = tiny(seed=1)
    batch = text_batch(tok, ["1+2=", "1+2="], ["3", "12"], scores=[1.0, -0.5])
    cfg = dpo.Config(loss=name, beta=0.5)
    batch = dpo.prepare(batch, cfg)
    with torch.no_grad():
        ref_logits = forward_logits(ref, batch)
    mask = batch.response_mask
    ref_lp = F.log_softmax(ref_logits, -1).gather(-1, batch.response_ids[..., None])[..., 0] * mask
    batch = batch.replace(ref_logprobs=ref_lp)

    # direct: summed log-probs, S(y) = Σ_t KL(π_ref ‖ π_θ) over the response, the core loss
    with torch.no_grad():
        logits = forward_logits(policy, batch)
        logp = F.log_softmax(logits, -1)
        kl = (F.softmax(ref_logits, -1) * (F.log_softmax(ref_logits, -1) - logp)).sum(-1)
        seq = (logp.gather(-1, batch.response_ids[..., None])[..., 0] * mask).sum(-1)
        s = (kl * mask).sum(-1)
        pairs = PairLogps(
            seq[0:1],
            seq[1:2],
            ref_lp.sum(-1)[0:1],
            ref_lp.sum(-1)[1:2],
            mask.sum(-1)[0:1].float(),
            mask.sum(-1)[1:2].float(),
            chosen_seq_kl=s[0:1],
            rejected_seq_kl=s[1:2],
        )
        expected = PREFERENCE_LOSSES[name](pairs, cfg.loss_params()).sum()
    assert abs(float(s[0] - s[1])) > 1e-3  # the KL term matters in this example

    def loss_fn(mb, lp, logits):
        return dpo.loss(mb, lp, cfg, logits=logits, ref_logits=forward_logits(ref, mb).detach())

    loss_fn.needs_logits = True
    learner = Learner(copy.deepcopy(policy), OptimConfig(lr=0.0, batch_size=1, micro_batch_size=1))
    learner.start_phase(1)
    metrics = learner.accumulate(batch, [0], 1, loss_fn, rows_per_unit=2)
    assert metrics["loss"] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="needs the policy's and the reference's logits"):
        dpo.loss(batch, torch.zeros(2, mask.shape[1]), cfg)


def test_divergence_mask_keeps_tokens_up_to_the_first_difference():
    _, tok = tiny()
    # pair 1 differs at the 3rd character; pair 2: "ab" is a prefix of "abc", they part at position 2 (EOS vs "c")
    batch = text_batch(tok, ["p"] * 4, ["12+3", "12*3", "ab", "abc"], scores=[1, 0, 1, 0])
    mask = dpo.divergence_mask(batch)
    assert mask.sum(-1).tolist() == [3, 3, 3, 3]
    assert mask[0, :3].all() and not mask[0, 3:].any()
    out = dpo.prepare(batch, dpo.Config(pair_scope="divergence"))
    assert torch.equal(out.score_mask, mask)
    assert (
        out.token_weights[0].sum() > 0 and (out.token_weights[0] > 0).sum() == 5
    )  # NLL keeps the whole chosen (4 + EOS)


def test_divergence_scope_contrasts_only_the_parting_tokens():
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 2, ["ab", "ac"], scores=[1, 0])  # 3 tokens each with EOS; part at index 1
    cfg = dpo.Config(pair_scope="divergence", beta=1.0)
    batch = dpo.prepare(batch, cfg).replace(ref_logprobs=torch.zeros(2, 3))
    logprobs = torch.tensor([[-0.1, -0.5, -9.0], [-0.1, -2.0, -9.0]])  # the tokens after the parting point do not count
    loss, metrics = dpo.loss(batch, logprobs, cfg)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))))  # Δ = (-0.6) - (-2.1)
    assert metrics["logps/chosen"] == pytest.approx(-0.6)


def test_weighted_list_of_losses_as_trl_loss_type_list():
    # the pair of test_loss_matches_hand_computation: h_w = 0.5, h_l = −1, Δ = 1.5, β = 0.5
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 2, ["a", "b"], scores=[1, 0])
    batch = dpo.prepare(batch, dpo.Config()).replace(ref_logprobs=torch.tensor([[-1.0, -1.0], [-2.0, -1.0]]))
    logprobs = torch.tensor([[-0.5, -1.0], [-2.5, -1.5]])
    cfg = dpo.Config(loss=["sigmoid", "hinge"], loss_weights=[0.8, 0.2], beta=0.5)
    loss, _ = dpo.loss(batch, logprobs, cfg)
    # TRL: loss = Σ_k loss_weights[k]·loss_k; sigmoid −logσ(0.75) = 0.474077, hinge max(0, 1 − 0.75) = 0.25
    assert loss.item() == pytest.approx(0.8 * math.log1p(math.exp(-0.75)) + 0.2 * 0.25, abs=1e-6)
    unweighted, _ = dpo.loss(batch, logprobs, dpo.Config(loss=["sigmoid", "hinge"], beta=0.5))
    assert unweighted.item() == pytest.approx(math.log1p(math.exp(-0.75)) + 0.25, abs=1e-6)
    with pytest.raises(ValueError, match="loss_weights"):
        dpo.Config(loss=["sigmoid", "hinge"], loss_weights=[1.0])
    with pytest.raises(ValueError, match="unknown loss 'slic'"):
        dpo.Config(loss=["sigmoid", "slic"])
    mixed = dpo.Config(loss=["simpo", "tdpo2"])
    assert mixed.needs_reference and mixed.needs_reference_logits


def test_every_loss_and_pairing_parameter_is_a_config_option_with_the_default_the_maths_declares():
    cfg = dpo.Config()
    for params, built in ((PreferenceLossParams(), cfg.loss_params()), (PairingParams(), cfg.pairing_params())):
        assert built == params  # defaults equal, and nothing the losses read is missing from the config
        for f in dataclasses.fields(params):
            assert f.name in dpo.Config.model_fields
    changed = dpo.Config(beta=0.3, tdpo_alpha=0.1, max_pairs_per_prompt=2)
    assert (changed.loss_params().beta, changed.loss_params().tdpo_alpha) == (0.3, 0.1)
    assert changed.pairing_params().max_pairs_per_prompt == 2
