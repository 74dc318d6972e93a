"""itero's HFGenerator vs ``model.generate``: same model, prompts, sampling and number of new tokens.

    python benchmarks/bench_generation.py [--threads 2] [--repeats 3]

Both sample at temperature 1 with no top-k/top-p and never stop early (EOS is disabled in both),
so each row gets exactly max_new_tokens tokens and the work is identical. Reports the best of
``--repeats`` interleaved runs per side (after one warm-up) in new tokens per second, and the ratio.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import GenerationConfig

from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.models.tiny import build_char_tokenizer, build_tiny_model

CONFIGS = [  # name, hidden, layers, rows, prompt length range, new tokens
    ("tiny-256x4", 256, 4, 256, (8, 40), 48),
    ("tiny-64x2", 64, 2, 256, (8, 40), 48),
    ("small-512x8", 512, 8, 64, (16, 64), 64),
]


def make_prompts(tokenizer, rows: int, length_range: tuple[int, int], seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    alphabet = "0123456789+-*= abcdefghijklmnopqrstuvwxyz"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(*length_range))) for _ in range(rows)]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def run_hf_generate(model, tokenizer, prompts, new_tokens: int) -> None:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
        eos_token_id=None, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert out.shape[1] - width == new_tokens


def run_itero(model, tokenizer, prompts, new_tokens: int) -> None:
    gen = HFGenerator(model, tokenizer)
    gen.eos_token_ids = torch.tensor([-1])  # no token ends a row: same work as the generate run
    batch = gen.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=0))
    assert bool(batch.response_mask.all()) and batch.response_ids.shape[1] == new_tokens


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function; runs are interleaved so load from other processes hits both sides alike."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="run one config by name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = build_char_tokenizer()
    print(f"torch threads={torch.get_num_threads()}  repeats={args.repeats} (best of)")
    print(f"{'config':<14}{'rows':>6}{'new':>5}{'generate tok/s':>16}{'itero tok/s':>13}{'ratio':>7}")
    for name, hidden, layers, rows, lengths, new_tokens in CONFIGS:
        if args.only and name != args.only:
            continue
        model = build_tiny_model(
            len(tokenizer), hidden_size=hidden, num_layers=layers, num_heads=max(4, hidden // 64),
            num_kv_heads=max(2, hidden // 128), intermediate_size=3 * hidden,
        ).eval()
        prompts = make_prompts(tokenizer, rows, lengths)
        tokens = rows * new_tokens
        t_hf, t_it = best_times(
            [lambda: run_hf_generate(model, tokenizer, prompts, new_tokens), lambda: run_itero(model, tokenizer, prompts, new_tokens)],
            args.repeats,
        )
        print(f"{name:<14}{rows:>6}{new_tokens:>5}{tokens / t_hf:>16.0f}{tokens / t_it:>13.0f}{t_hf / t_it:>7.2f}")


if __name__ == "__main__":
    main()
