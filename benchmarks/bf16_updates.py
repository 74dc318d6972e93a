"""How much of a bf16 model do AdamW updates move? Stored weights vs fp32 master weights.

    python benchmarks/bf16_updates.py                       # the quickstart's model shape, 3 steps
    python benchmarks/bf16_updates.py --steps 10 --lrs 1e-6 3e-6 1e-5

The same model, batch and steps under three optimizers: fp32 weights with torch's AdamW (the
reference), bf16 weights with torch's AdamW (each update rounded into the bf16 weight), and bf16 weights
with itero's ``MasterWeightAdamW`` (fp32 master copies, what the learner uses for bf16 models). Prints,
per learning rate, the share of weights whose stored value changed and how far each run's weights
moved from the start relative to the fp32 run's movement.
"""

from __future__ import annotations

import argparse

import torch

from itero.models.tiny import build_char_tokenizer, build_tiny_model
from itero.training.master_weights import MasterWeightAdamW


def model_of(dtype: torch.dtype, hidden: int, layers: int):
    tok = build_char_tokenizer()
    model = build_tiny_model(
        len(tok),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=3 * hidden,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        seed=0,
    )
    return model.to(dtype), len(tok)


def train(dtype, optimizer, lr: float, steps: int, args) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    model, vocab = model_of(dtype, args.hidden, args.layers)
    start = [p.detach().float().clone() for p in model.parameters()]
    opt = optimizer(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(3, vocab, (16, 48), generator=g)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return start, [p.detach().float() for p in model.parameters()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = {
        "fp32 weights, AdamW": (torch.float32, torch.optim.AdamW),
        "bf16 weights, AdamW": (torch.bfloat16, torch.optim.AdamW),
        "bf16 weights, MasterWeightAdamW": (torch.bfloat16, MasterWeightAdamW),
    }
    print(f"{args.steps} steps, model hidden {args.hidden}, {args.layers} layers, torch {torch.__version__}")
    print("| lr | run | weights changed | movement / fp32 run's |")
    print("|---:|---|---:|---:|")
    for lr in args.lrs:
        reference = None
        for name, (dtype, optimizer) in runs.items():
            start, end = train(dtype, optimizer, lr, args.steps, args)
            changed = sum(int((e != s).sum()) for s, e in zip(start, end)) / sum(s.numel() for s in start)
            delta = torch.cat([(e - s).flatten() for s, e in zip(start, end)])
            reference = delta if reference is None else reference
            ratio = float(delta.norm() / reference.norm())
            print(f"| {lr:g} | {name} | {changed:.1%} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
