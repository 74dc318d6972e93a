import pytest
import torch

from itero.core.logprobs import token_logprobs
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator, Mixture

NO_EOS = torch.tensor([-1])  # an id no token has: rows run to max_new_tokens


def generator(model, tokenizer, eos=None, **kwargs):
    gen = HFGenerator(model, tokenizer, **kwargs)
    if eos is not None:
        gen.eos_token_ids = torch.as_tensor(eos).reshape(-1)
    return gen


def test_same_seed_reproduces_and_other_seed_differs(policy, tokenizer, prompts):
    gen = generator(policy, tokenizer)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=7)
    state = torch.get_rng_state()
    a, b = gen.generate(prompts, params), gen.generate(prompts, params)
    assert torch.equal(torch.get_rng_state(), state), "sampling must not touch the global RNG"
    assert torch.equal(a.response_ids, b.response_ids)
    assert torch.equal(a.sampler_logprobs, b.sampler_logprobs)
    c = gen.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=8))
    assert not torch.equal(a.response_ids, c.response_ids[:, : a.response_ids.shape[1]])


def test_rows_are_grouped_per_prompt_with_texts_repeated(policy, tokenizer, prompts):
    texts = [f"p{i}" for i in range(len(prompts))]
    batch = generator(policy, tokenizer).generate(
        prompts, SamplingParams(n=2, max_new_tokens=4, seed=0), prompt_texts=texts, answers=texts
    )
    assert batch.group_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert batch.prompt_texts == ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"] == batch.answers
    for row, i in enumerate(batch.group_ids.tolist()):
        assert batch.prompt_ids[row][batch.prompt_mask[row]].tolist() == prompts[i]
    for row in range(batch.batch_size):
        kept = batch.response_ids[row][batch.response_mask[row]].tolist()
        assert batch.response_texts[row] == tokenizer.decode(kept, skip_special_tokens=True)


def test_greedy_left_padded_batch_matches_each_prompt_alone(policy, tokenizer, prompts):
    gen = generator(policy, tokenizer, eos=NO_EOS)
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    batch = gen.generate(prompts, params)
    assert batch.prompt_mask.sum(-1).unique().numel() > 1  # the batch really is left-padded
    for i, p in enumerate(prompts):
        alone = gen.generate([p], params)
        assert torch.equal(batch.response_ids[i], alone.response_ids[0])
        torch.testing.assert_close(batch.sampler_logprobs[i], alone.sampler_logprobs[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 0, 1.0), (0.7, 20, 0.9), (0.0, 0, 1.0)])
def test_sampler_logprobs_equal_learner_logprobs(policy, tokenizer, prompts, learner_logits, temperature, top_k, top_p):
    params = SamplingParams(n=2, temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=12, seed=3)
    batch = generator(policy, tokenizer).generate(prompts, params)
    learner = token_logprobs(learner_logits(policy, batch), batch.response_ids, temperature or 1.0)
    learner = learner * batch.response_mask
    torch.testing.assert_close(batch.sampler_logprobs, learner, atol=1e-5, rtol=0)
    assert (batch.sampler_logprobs[~batch.response_mask] == 0).all()


def test_eos_ends_row_and_max_new_tokens_truncates(policy, tokenizer, prompts):
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    free = generator(policy, tokenizer, eos=NO_EOS).generate(prompts, params)
    assert free.truncated.all() and free.response_mask.all()
    # pretend a token of row 0 that some other row never emits is EOS, so rows end at different steps
    rows = free.response_ids.tolist()
    eos = next(t for t in rows[0][2:] if any(t not in r for r in rows))
    stopped = generator(policy, tokenizer, eos=[eos]).generate(prompts, params)
    n_early = 0
    for row in range(len(prompts)):
        tokens = rows[row]
        if eos in tokens:
            end = tokens.index(eos) + 1
            n_early += 1
            assert not stopped.truncated[row]
        else:
            end = len(tokens)
            assert stopped.truncated[row]
        assert stopped.response_lengths[row] == end
        # rows that continue after others were dropped from the cache still decode the same tokens
        assert stopped.response_ids[row, :end].tolist() == tokens[:end]
        assert (stopped.response_ids[row, end:] == tokenizer.pad_token_id).all()
    assert 1 <= n_early < len(prompts)


def test_stop_string_ends_row_after_completing_token(policy, tokenizer, prompts):
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    free = generator(policy, tokenizer, eos=NO_EOS).generate(prompts, params)
    text = free.response_texts[1]
    stop_str = text[4:6]  # two characters = two tokens of the char tokenizer
    stop_params = SamplingParams(temperature=0.0, max_new_tokens=12, stop=(stop_str,))
    stopped = generator(policy, tokenizer, eos=NO_EOS).generate(prompts, stop_params)
    for row in range(len(prompts)):
        full = free.response_texts[row]
        if stop_str in full:
            assert stopped.response_texts[row] == full[: full.index(stop_str) + len(stop_str)]
            assert not stopped.truncated[row]
        else:
            assert stopped.response_texts[row] == full and stopped.truncated[row]
    assert stopped.response_texts[1].endswith(stop_str) and stopped.response_lengths[1] <= 6


def test_top_k_1_and_tiny_top_p_equal_greedy(policy, tokenizer, prompts):
    gen = generator(policy, tokenizer, eos=NO_EOS)
    greedy = gen.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=10))
    top_k = gen.generate(prompts, SamplingParams(n=1, temperature=1.0, top_k=1, max_new_tokens=10, seed=0))
    top_p = gen.generate(prompts, SamplingParams(n=1, temperature=1.3, top_p=1e-6, max_new_tokens=10, seed=0))
    assert torch.equal(top_k.response_ids, greedy.response_ids)
    assert torch.equal(top_p.response_ids, greedy.response_ids)
    # at temperature 1 the log-prob is the greedy one (before truncation, not log 1 = 0)
    torch.testing.assert_close(top_k.sampler_logprobs, greedy.sampler_logprobs, atol=1e-6, rtol=0)
    assert (top_k.sampler_logprobs < 0).all()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_mixture_samples_from_mixed_logits(policy, other_model, tokenizer, prompts, learner_logits, temperature):
    mixture = Mixture(model=other_model, weights=(1.5, -0.5))
    params = SamplingParams(n=2, temperature=temperature, top_p=0.95, max_new_tokens=12, seed=5)
    batch = generator(policy, tokenizer).generate(prompts, params, mixture=mixture)
    mixed = 1.5 * learner_logits(policy, batch) - 0.5 * learner_logits(other_model, batch)
    direct = token_logprobs(mixed, batch.response_ids, temperature) * batch.response_mask
    torch.testing.assert_close(batch.sampler_logprobs, direct, atol=1e-5, rtol=0)
    # and it is not the policy's own distribution
    plain = token_logprobs(learner_logits(policy, batch), batch.response_ids, temperature) * batch.response_mask
    assert (batch.sampler_logprobs - plain).abs().max() > 1e-2


def test_mixture_with_weights_1_0_is_plain_sampling(policy, other_model, tokenizer, prompts):
    params = SamplingParams(n=3, temperature=0.9, max_new_tokens=12, seed=11)
    gen = generator(policy, tokenizer)
    plain = gen.generate(prompts, params)
    mixed = gen.generate(prompts, params, mixture=Mixture(model=other_model, weights=(1.0, 0.0)))
    assert torch.equal(plain.response_ids, mixed.response_ids)
    torch.testing.assert_close(plain.sampler_logprobs, mixed.sampler_logprobs, atol=1e-6, rtol=0)


def test_batch_size_chunks_give_the_same_greedy_result(policy, tokenizer, prompts):
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=10)
    whole = generator(policy, tokenizer).generate(prompts, params)
    chunked = generator(policy, tokenizer, batch_size=3).generate(prompts, params)
    whole, chunked = whole.trimmed(), chunked.trimmed()
    assert torch.equal(whole.prompt_ids, chunked.prompt_ids)
    assert torch.equal(whole.response_ids, chunked.response_ids)
    assert torch.equal(whole.response_mask, chunked.response_mask)
    assert torch.equal(whole.group_ids, chunked.group_ids)
    assert whole.response_texts == chunked.response_texts
    torch.testing.assert_close(whole.sampler_logprobs, chunked.sampler_logprobs, atol=1e-5, rtol=0)


def test_update_weights_is_a_no_op_and_training_mode_is_restored(policy, tokenizer, prompts):
    gen = generator(policy, tokenizer)
    before = [p.clone() for p in policy.parameters()]
    gen.update_weights(policy.state_dict())
    policy.train()
    try:
        gen.generate(prompts, SamplingParams(max_new_tokens=2, seed=0))
        assert policy.training
    finally:
        policy.eval()
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_other_architectures_batch_alone_and_learner_agree(kind, request, tokenizer, prompts, learner_logits):
    model = request.getfixturevalue(f"{kind}_model")
    gen = generator(model, tokenizer, eos=NO_EOS)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    batch = gen.generate(prompts, greedy)
    for i, p in enumerate(prompts):
        alone = gen.generate([p], greedy)
        assert torch.equal(batch.response_ids[i], alone.response_ids[0])
        torch.testing.assert_close(batch.sampler_logprobs[i], alone.sampler_logprobs[0], atol=1e-5, rtol=0)
    sampled = gen.generate(prompts, SamplingParams(n=2, temperature=0.7, max_new_tokens=8, seed=1))
    learner = token_logprobs(learner_logits(model, sampled), sampled.response_ids, 0.7) * sampled.response_mask
    torch.testing.assert_close(sampled.sampler_logprobs, learner, atol=1e-5, rtol=0)


def test_batch_tensors_can_enter_autograd(policy, tokenizer, prompts, learner_logits):
    batch = generator(policy, tokenizer).generate(prompts, SamplingParams(max_new_tokens=4, seed=0))
    assert not any(getattr(batch, name).is_inference() for name in batch.tensor_fields())
    P = batch.prompt_ids.shape[1]
    input_ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    logits = policy(input_ids=input_ids).logits[:, P - 1 : -1]
    token_logprobs(logits, batch.response_ids).sum().backward()  # raises on inference tensors
    assert policy.lm_head.weight.grad is not None
    policy.zero_grad(set_to_none=True)


def test_prefill_in_length_buckets_matches_one_padded_batch(
    monkeypatch, policy, other_model, tokenizer, learner_logits
):
    import itero.generation.stepper as hf  # the stepper holds the prefill and the fast-path switch

    monkeypatch.setattr(hf, "fast_decoders", lambda *args: None)  # buckets are the generic path's prefill
    texts = ["x", "12+7=", "ab", "Solve: 3*4 = ", "The answer is \\boxed{", "q", "7*8-1=", "hello there, "]
    prompts = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=8)
    monkeypatch.setattr(hf, "PREFILL_BUCKETS", 1)
    padded = generator(policy, tokenizer, eos=NO_EOS).generate(prompts, greedy)
    monkeypatch.setattr(hf, "PREFILL_BUCKETS", 4)
    monkeypatch.setattr(hf, "PREFILL_BUCKET_MIN_ROWS", 1)
    assert len(hf._length_buckets(padded.prompt_mask.sum(-1))) == 4
    bucketed = generator(policy, tokenizer, eos=NO_EOS).generate(prompts, greedy)
    assert torch.equal(bucketed.response_ids, padded.response_ids)
    torch.testing.assert_close(bucketed.sampler_logprobs, padded.sampler_logprobs, atol=1e-5, rtol=0)
    # sampling with a mixture goes through the same bucketed prefill for both models
    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=8, seed=4)
    batch = generator(policy, tokenizer).generate(
        prompts, params, mixture=Mixture(model=other_model, weights=(1.5, -0.5))
    )
    mixed = 1.5 * learner_logits(policy, batch) - 0.5 * learner_logits(other_model, batch)
    direct = token_logprobs(mixed, batch.response_ids, 0.8) * batch.response_mask
    torch.testing.assert_close(batch.sampler_logprobs, direct, atol=1e-5, rtol=0)
