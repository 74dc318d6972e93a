"""KL(policy || base): zero for equal models, the exact KL of two tiny models within its standard error, the CLI."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from helpers import tiny

from itero.evaluation import kl
from itero.models.tiny import build_char_tokenizer, save_tiny


def peaked(seed: int):
    """A tiny model with larger weights: the default init is near-uniform, so two seeds would be almost equal."""
    model, tokenizer = tiny(seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval(), tokenizer


def next_token_logprobs(model, ids: list[list[int]]) -> torch.Tensor:
    """log-softmax of the next-token logits after each (unpadded, equal-length) sequence. (B, V)"""
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor(ids)).logits[:, -1].double(), -1)


def exact_kl_two_tokens(policy, base, prompt: list[int], eos: int) -> tuple[float, float]:
    """E_{y~π}[Σ_t log π/β] over responses of at most 2 tokens, and its variance, by enumerating y1.

    A response is y1 alone when y1 is EOS, else y1 y2: KL = Σ_{y1} π(y1)[r(y1) + 1{y1≠eos} KL_2(y1)].
    """
    lp, lb = next_token_logprobs(policy, [prompt])[0], next_token_logprobs(base, [prompt])[0]
    V = lp.shape[0]
    cont = [prompt + [y] for y in range(V)]
    lp2, lb2 = next_token_logprobs(policy, cont), next_token_logprobs(base, cont)  # (V, V)
    r1 = lp - lb  # (V,)
    r2 = lp2 - lb2  # (V, V): log-ratio of y2 after y1
    p2 = lp2.exp()
    first_moment = (p2 * r2).sum(-1)  # E[r2 | y1]
    second_moment = (p2 * r2**2).sum(-1)  # E[r2² | y1]
    cont_on = torch.ones(V, dtype=torch.float64)
    cont_on[eos] = 0.0
    mean = (lp.exp() * (r1 + cont_on * first_moment)).sum()
    square = (lp.exp() * (r1**2 + cont_on * (2 * r1 * first_moment + second_moment))).sum()
    return float(mean), float(square - mean**2)


def test_the_same_model_has_zero_kl():
    model, tok = peaked(0)
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("12+7=", "x")]
    result = kl.estimate_kl(model, model, tok, prompts, n=3, max_new_tokens=5)
    assert result.mean == 0.0 and result.stderr == 0.0
    assert result.num_samples == 6 and result.num_prompts == 2


def test_estimate_matches_the_exact_kl_within_its_standard_error():
    policy, tok = peaked(0)
    base, _ = peaked(1)
    prompt = tok.encode("3*4=", add_special_tokens=False)
    exact, variance = exact_kl_two_tokens(policy, base, prompt, tok.eos_token_id)
    assert exact > 0.5  # the two models really differ
    n = 1500
    result = kl.estimate_kl(policy, base, tok, [prompt], n=n, max_new_tokens=2, seed=5, micro_batch_size=500)
    assert result.num_samples == n
    assert result.stderr == pytest.approx((variance / n) ** 0.5, rel=0.15)
    assert abs(result.mean - exact) < 4 * result.stderr


def _run(argv):
    parser = argparse.ArgumentParser()
    kl.add_arguments(parser)
    return kl.run(parser.parse_args(argv))


def test_cli_writes_the_estimate(tmp_path, capsys):
    policy, tok = peaked(0)
    base, _ = peaked(1)
    p_dir, b_dir = save_tiny(tmp_path / "policy", policy, tok), save_tiny(tmp_path / "base", base, tok)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"question": q}) + "\n" for q in ("1+1=", "2*3=", "9-4=")))
    common = [
        "--prompts",
        str(prompts),
        "--prompt-field",
        "question",
        "--n",
        "2",
        "--max-new-tokens",
        "4",
        "--no-progress",
    ]
    assert _run([str(p_dir), str(b_dir), *common, "--out", str(tmp_path / "kl.json")]) == 0
    written = json.loads((tmp_path / "kl.json").read_text())
    assert written["num_samples"] == 6 and written["num_prompts"] == 3
    assert written["mean"] > 0 and written["stderr"] > 0
    assert f"{written['mean']:.4f} ± {written['stderr']:.4f}" in capsys.readouterr().out
    assert _run([str(p_dir), str(p_dir), *common, "--out", str(tmp_path / "self.json")]) == 0
    assert json.loads((tmp_path / "self.json").read_text())["mean"] == 0.0


def test_cli_refuses_models_with_different_tokenizers(tmp_path, capsys):
    policy, tok = peaked(0)
    other_tok = build_char_tokenizer(alphabet="0123456789+*=")
    p_dir = save_tiny(tmp_path / "policy", policy, tok)
    b_dir = save_tiny(tmp_path / "base", policy, other_tok)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"problem": "1+1="}) + "\n")
    assert _run([str(p_dir), str(b_dir), "--prompts", str(prompts), "--no-progress"]) == 2
    assert "different tokenizers" in capsys.readouterr().err
