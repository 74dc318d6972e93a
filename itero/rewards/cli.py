"""``itero train-rm``: train a Bradley–Terry reward model on preference pairs from a JSONL file.

    itero train-rm DATA.jsonl --base MODEL_OR_tiny --out DIR [--epochs 1] [--lr 1e-5] [--batch-size 8]
                   [--val-fraction 0.1] [--prompt-field prompt] [--chosen-field chosen] [--rejected-field rejected]

Loss −log σ(r_chosen − r_rejected) with AdamW; the folder written is loadable by
``AutoModelForSequenceClassification.from_pretrained`` and ``RewardModel.from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from itero.cli_args import positive_float, positive_int
from itero.errors import DivergenceError, check_finite_parameters, check_finite_step, largest_parameter
from itero.rewards.reward_model import (
    bradley_terry_loss,
    pairwise_accuracy,
    score_texts,
)
from itero.tasks.jsonl import DataFileError, read_jsonl
from itero.tracking import progress
from itero.tracking.rundir import atomic_dir

Pair = tuple[str, str]  # (prompt + chosen, prompt + rejected), as the RM sees them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="JSONL file, one preference pair per line")
    parser.add_argument(
        "--base", required=True, help="model folder / hub name to start from, or 'tiny' to build one locally"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (model, tokenizer, metrics.json)")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument(
        "--lr", type=positive_float, default=1e-5, help="AdamW learning rate (a tiny model from scratch wants ~1e-3)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="pairs per optimizer step")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="pairs held out for validation accuracy")
    parser.add_argument(
        "--max-length", type=int, default=None, help="tokens per sequence; longer ones lose their start"
    )
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt-field", default="prompt")
    parser.add_argument("--chosen-field", default="chosen")
    parser.add_argument("--rejected-field", default="rejected")
    parser.add_argument("--tiny-hidden", type=positive_int, default=64, help="hidden size of --base tiny")
    parser.add_argument("--tiny-layers", type=positive_int, default=2, help="layers of --base tiny")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")


def read_preference_pairs(path: Path, prompt_field: str, chosen_field: str, rejected_field: str) -> list[Pair]:
    """Every pair of the file; a bad line or a missing / non-string field is a DataFileError naming file:line:field."""
    fields = (prompt_field, chosen_field, rejected_field)
    rows = read_jsonl(path, required=fields)
    # read_jsonl skips blank lines, so recover each row's line number for the type errors below
    with Path(path).open(encoding="utf-8") as f:
        lines = [n for n, line in enumerate(f, 1) if line.strip()]
    for row, lineno in zip(rows, lines):
        for name in fields:
            if not isinstance(row[name], str):
                raise DataFileError(f"{path}:{lineno}: field {name!r} must be a string, got {type(row[name]).__name__}")
    if not rows:
        raise DataFileError(f"{path}: no preference pairs")
    ties = [n for row, n in zip(rows, lines) if row[chosen_field] == row[rejected_field]]
    if ties:  # legal, but such a pair teaches nothing and its loss stays at log 2
        progress.warn(
            f"{path}: {len(ties)} of {len(rows)} pairs have chosen equal to rejected (first at line {ties[0]}); "
            "they carry no preference"
        )
    return [(r[prompt_field] + r[chosen_field], r[prompt_field] + r[rejected_field]) for r in rows]


def split(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = min(len(pairs) - 1, round(val_fraction * len(pairs))) if val_fraction > 0 else 0
    if val_fraction > 0 and len(pairs) > 1:
        n_val = max(n_val, 1)
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def pair_scores(model, tokenizer, pairs: list[Pair], max_length) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each (N,): one forward over the 2N sequences."""
    scores = score_texts(model, tokenizer, [c for c, _ in pairs] + [r for _, r in pairs], max_length)
    return scores[: len(pairs)], scores[len(pairs) :]


@torch.no_grad()
def evaluate(model, tokenizer, pairs: list[Pair], batch_size: int, max_length) -> dict[str, float]:
    if not pairs:
        return {"loss": float("nan"), "accuracy": float("nan"), "pairs": 0}
    model.eval()
    chosen, rejected = zip(
        *(
            pair_scores(model, tokenizer, pairs[i : i + batch_size], max_length)
            for i in range(0, len(pairs), batch_size)
        )
    )
    c, r = torch.cat(chosen), torch.cat(rejected)
    return {"loss": float(bradley_terry_loss(c, r)), "accuracy": pairwise_accuracy(c, r), "pairs": len(pairs)}


def train(model, tokenizer, train_pairs: list[Pair], val_pairs: list[Pair], args) -> dict:
    """AdamW over shuffled mini-batches; metrics per epoch, on train and validation pairs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    rng = random.Random(args.seed)
    steps_per_epoch = -(-len(train_pairs) // args.batch_size)
    history = []
    with progress.stage("train-rm", args.epochs * steps_per_epoch) as advance:
        for epoch in range(args.epochs):
            model.train()
            order = list(range(len(train_pairs)))
            rng.shuffle(order)
            for start in range(0, len(order), args.batch_size):
                batch = [train_pairs[i] for i in order[start : start + args.batch_size]]
                loss = bradley_terry_loss(*pair_scores(model, tokenizer, batch, args.max_length))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # a few outlier pairs must not blow up a tiny model
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
                try:  # a diverged model is never saved: stop at the first non-finite step
                    check_finite_step(float(loss.detach()), grad_norm)
                    optimizer.step()
                    check_finite_parameters(largest_parameter(model.parameters()))
                except DivergenceError as err:
                    raise DivergenceError(
                        f"train-rm diverged: {err} in epoch {epoch + 1}, step {start // args.batch_size + 1}; "
                        f"nothing was saved: lower --lr (now {args.lr})"
                    ) from None
                advance(1)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train": evaluate(model, tokenizer, train_pairs, args.batch_size * 4, args.max_length),
                    "val": evaluate(model, tokenizer, val_pairs, args.batch_size * 4, args.max_length),
                }
            )
            h = history[-1]
            progress.info(
                f"epoch {epoch + 1}: train acc {h['train']['accuracy']:.3f} loss {h['train']['loss']:.4f}"
                f" | val acc {h['val']['accuracy']:.3f} loss {h['val']['loss']:.4f}"
            )
    return {
        "epochs": history,
        "train_accuracy": history[-1]["train"]["accuracy"],
        "val_accuracy": history[-1]["val"]["accuracy"],
    }


def load_base(args):
    """(model, tokenizer) to train: a local tiny model, or any checkpoint with a fresh one-label score head."""
    if args.base == "tiny":
        from itero.models.tiny import build_char_tokenizer
        from itero.models.tiny_rm import build_tiny_reward_model

        tokenizer = build_char_tokenizer()
        return build_tiny_reward_model(
            tokenizer, hidden_size=args.tiny_hidden, num_layers=args.tiny_layers, seed=args.seed
        ), tokenizer
    from transformers import AutoModelForSequenceClassification

    from itero.models.loading import load_tokenizer

    tokenizer = load_tokenizer(args.base)
    model = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=1)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = (
            tokenizer.pad_token_id
        )  # saved with the model, so scoring finds the last token later
    return model, tokenizer


def run(args) -> int:
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; give a folder to write the reward model to", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        print(f"error: {args.out} exists and is not empty; pass --force to replace it", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.batch_size < 1 or not 0 <= args.val_fraction < 1:
        print("error: need --epochs >= 1, --batch-size >= 1 and 0 <= --val-fraction < 1", file=sys.stderr)
        return 2
    # Read and check everything before building anything, so bad data writes nothing.
    pairs = read_preference_pairs(args.data, args.prompt_field, args.chosen_field, args.rejected_field)
    train_pairs, val_pairs = split(pairs, args.val_fraction, args.seed)
    torch.manual_seed(args.seed)
    model, tokenizer = load_base(args)
    progress.info(f"train-rm: {len(train_pairs)} train / {len(val_pairs)} validation pairs, base {args.base}")
    start = time.perf_counter()
    metrics = train(model, tokenizer, train_pairs, val_pairs, args)
    metrics.update(
        seconds=time.perf_counter() - start,
        base=args.base,
        data=str(args.data),
        lr=args.lr,
        batch_size=args.batch_size,
        train_pairs=len(train_pairs),
        val_pairs=len(val_pairs),
    )
    with atomic_dir(args.out) as tmp:  # the folder appears only complete
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    progress.info(
        f"train-rm: val accuracy {metrics['val_accuracy']:.3f}, train accuracy {metrics['train_accuracy']:.3f},"
        f" {metrics['seconds']:.1f}s -> {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="itero train-rm", description=__doc__.split("\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except DataFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
