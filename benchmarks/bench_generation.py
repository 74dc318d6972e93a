"""itero's HFGenerator vs ``model.generate``: same model, prompts, sampling and token budget.

    python benchmarks/bench_generation.py [--threads 2] [--repeats 3] [--only NAME] [--mode forced|eos]
                                          [--dtype float32|bfloat16]

Both sample at temperature 1 with no top-k/top-p from the same model and prompts. Two modes:

- ``forced``: EOS is disabled in both, so every row gets exactly max_new_tokens tokens and the
  work is identical (the apples-to-apples comparison of the decode loops).
- ``eos``: a few character tokens act as EOS (about 5% per step with the random tiny model), so
  rows end at different lengths as in a real RL batch. ``generate`` keeps decoding finished rows
  until the last one ends; HFGenerator drops them. Only tokens up to and including each row's EOS
  count.

Reports the best of ``--repeats`` interleaved runs per side (after one warm-up) in new tokens per
second, and the ratio. Interleaving makes load from other processes hit both sides alike.
``--dtype bfloat16`` casts the model to bfloat16 for both sides (on CPUs with AMX or AVX512-BF16
the matmuls run several times faster than in float32).
"""

from __future__ import annotations

import argparse
import functools
import os
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
EOS_CHARS = "qwxyz"  # "eos" mode: any of these ends a row


def make_prompts(tokenizer, rows: int, length_range: tuple[int, int], seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    alphabet = "0123456789+-*= abcdefghijklmnopqrstuvwxyz"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(*length_range))) for _ in range(rows)]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def run_hf_generate(model, tokenizer, prompts, new_tokens: int, eos: list[int]) -> int:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=new_tokens,
        eos_token_id=eos or None,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
    if not eos:
        assert out.shape[1] == new_tokens
        return out.numel()
    is_eos = torch.isin(out, torch.tensor(eos))
    ended = is_eos.any(-1)
    return int(torch.where(ended, is_eos.int().argmax(-1) + 1, out.shape[1]).sum())


def run_itero(model, tokenizer, prompts, new_tokens: int, eos: list[int]) -> int:
    gen = HFGenerator(model, tokenizer)
    gen.eos_token_ids = torch.tensor(eos or [-1])  # -1: no token ends a row
    batch = gen.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=0))
    if not eos:
        assert bool(batch.response_mask.all()) and batch.response_ids.shape[1] == new_tokens
    return int(batch.response_mask.sum())


def best_rates(fns, repeats: int) -> list[tuple[float, float]]:
    """(best tokens/s, mean tokens per row-run) of each function; runs are interleaved."""
    for fn in fns:
        fn()  # warm-up
    best = [(0.0, 0)] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            tokens = fn()
            rate = tokens / (time.perf_counter() - start)
            best[i] = max(best[i], (rate, tokens))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="run one config by name")
    parser.add_argument("--mode", choices=["forced", "eos", "both"], default="both")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = build_char_tokenizer()
    modes = ["forced", "eos"] if args.mode == "both" else [args.mode]
    load = os.getloadavg()[0]  # other processes' load: the numbers are only comparable on a quiet machine
    print(
        f"torch threads={torch.get_num_threads()}  {args.dtype}  best of {args.repeats} interleaved runs  load average {load:.1f}"
    )
    print(
        f"{'config':<13}{'mode':<8}{'rows':>5}{'max new':>8}{'tokens':>8}{'generate tok/s':>16}{'itero tok/s':>13}{'ratio':>7}"
    )
    for name, hidden, layers, rows, lengths, new_tokens in CONFIGS:
        if args.only and name != args.only:
            continue
        model = (
            build_tiny_model(
                len(tokenizer),
                hidden_size=hidden,
                num_layers=layers,
                num_heads=max(4, hidden // 64),
                num_kv_heads=max(2, hidden // 128),
                intermediate_size=3 * hidden,
            )
            .to(getattr(torch, args.dtype))
            .eval()
        )
        prompts = make_prompts(tokenizer, rows, lengths)
        for mode in modes:
            eos = tokenizer.convert_tokens_to_ids(list(EOS_CHARS)) if mode == "eos" else []
            (r_hf, n_hf), (r_it, n_it) = best_rates(
                [
                    functools.partial(run_hf_generate, model, tokenizer, prompts, new_tokens, eos),
                    functools.partial(run_itero, model, tokenizer, prompts, new_tokens, eos),
                ],
                args.repeats,
            )
            print(f"{name:<13}{mode:<8}{rows:>5}{new_tokens:>8}{n_it:>8}{r_hf:>16.0f}{r_it:>13.0f}{r_it / r_hf:>7.2f}")


if __name__ == "__main__":
    main()
