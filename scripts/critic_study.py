"""Where a run's positive advantages go, and how well a critic ranks prompts
(docs/results/positive-samples-and-critics.md).

    python scripts/critic_study.py weights runs/ppo/iter_4/prepared.pt runs/grpo-psr/iter_3/prepared.pt
    python scripts/critic_study.py fit --sft runs/ppo/sft/checkpoint --train runs/ppo/iter_1/prepared.pt \
        --test runs/ppo/iter_2/prepared.pt --value-lr 1e-4 --value-epsilon 0.2 --epochs 4

``weights``: for each prepared batch (``iter_<k>/prepared.pt``), the share of the positive part of
Σ_t token_weight·A_t that lands on prompts with 1, 2–3, 4–6 and 7–8 correct samples of 8, and, when
the batch has the critic's values, the correlation of V(s_0) (the value at the first response token)
with the prompt's mean reward. GRPO's group baseline gives every prompt with mixed outcomes the same
total; a critic that cannot tell easy prompts from hard ones gives most of it to the easy ones.

``fit``: a fresh critic (the SFT backbone with a zero head, as ``ppo`` builds it) trained on one
batch's returns with the clipped value loss, then scored on another batch of fresh prompts:
explained variance of the returns and corr(V(s_0), prompt mean reward). Returns are the batch's own
(λ = 1 runs: the outcome plus the KL terms, independent of the values).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from itero.algorithms import ppo
from itero.core.masked import explained_variance
from itero.models.value import ValueModel, compute_values, forward_values
from itero.training.learner import Learner, OptimConfig

BINS = [(1, 2), (2, 4), (4, 7), (7, 9)]


def group_means(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean score and number of correct samples (score > 0.5) of every row's prompt, per row (B,)."""
    g = batch.group_ids
    count = torch.bincount(g).float()
    mean = torch.zeros(len(count)).index_add_(0, g, batch.scores.float()) / count
    correct = torch.zeros(len(count)).index_add_(0, g, (batch.scores > 0.5).float())
    return mean[g], correct[g]


def first_token_values(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values[torch.arange(values.shape[0]), mask.float().argmax(-1)]


def weight_shares(batch, advantages: torch.Tensor) -> list[float]:
    """Share of Σ token_weight·max(A, 0) on the rows of prompts with c correct samples, c in each of BINS."""
    mask = batch.response_mask.float()
    token_weights = batch.token_weights if batch.token_weights is not None else mask / mask.sum()  # RLOO: none
    per_row = (token_weights * advantages.clamp(min=0) * mask).sum(-1)
    _, correct = group_means(batch)
    total = float(per_row.sum()) or 1.0
    return [round(float(per_row[(correct >= lo) & (correct < hi)].sum()) / total, 3) for lo, hi in BINS]


def value_scores(batch, values: torch.Tensor) -> dict:
    mask = batch.response_mask.bool()
    mean, _ = group_means(batch)
    v0 = first_token_values(values, mask)
    out = {
        "corr_v0_prompt_mean": round(float(torch.corrcoef(torch.stack([v0, mean]))[0, 1]), 3),
        "v0_std": round(float(v0.std()), 3),
        "prompt_mean_std": round(float(mean.std()), 3),
    }
    if batch.returns is not None:
        out["explained_variance"] = round(explained_variance(values, batch.returns, mask), 3)
    return out


def weights(paths: list[str]) -> None:
    for path in paths:
        batch = torch.load(path, weights_only=False)
        if batch.advantages is None:  # RAFT / DPO batches carry no advantages
            print(json.dumps({"batch": path, "skipped": "no advantages"}))
            continue
        row = {"batch": path, "share_by_correct_1|2-3|4-6|7-8": weight_shares(batch, batch.advantages)}
        if batch.values is not None:
            row.update(value_scores(batch, batch.values))
        print(json.dumps(row))


def fit(args) -> None:
    torch.manual_seed(0)
    train, test = (torch.load(p, weights_only=False) for p in (args.train, args.test))
    cfg = ppo.Config(lam=1.0, value_epsilon=args.value_epsilon)
    critic = ValueModel.from_policy(args.sft)
    learner = Learner(
        critic,
        OptimConfig(lr=args.value_lr, batch_size=64, micro_batch_size=32, warmup_ratio=0.05),
        forward=forward_values,
    )
    learner.start_phase(learner.num_steps(train.batch_size, args.epochs) * args.horizon_iterations)
    start = time.time()
    learner.fit(train, lambda mb, v: ppo.value_loss(mb, v, cfg), epochs=args.epochs, seed=1)
    scores = {name: value_scores(b, compute_values(critic, b, 64)) for name, b in (("train", train), ("test", test))}
    print(
        json.dumps(
            {
                "value_lr": args.value_lr,
                "value_epsilon": args.value_epsilon,
                "epochs": args.epochs,
                "seconds": round(time.time() - start),
                **scores,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("weights", help="where the positive advantages go; V(s_0) vs prompt mean reward")
    w.add_argument("paths", nargs="+")
    f = sub.add_parser("fit", help="train a fresh critic on one batch, score it on another")
    f.add_argument("--sft", required=True, help="the SFT checkpoint folder the critic starts from")
    f.add_argument("--train", required=True)
    f.add_argument("--test", required=True)
    f.add_argument("--value-lr", type=float, default=1e-4)
    f.add_argument("--value-epsilon", type=float, default=0.2)
    f.add_argument("--epochs", type=int, default=4)
    f.add_argument(
        "--horizon-iterations", type=int, default=5, help="the cosine spans this many iterations, as in a run"
    )
    f.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    weights(args.paths) if args.command == "weights" else fit(args)


if __name__ == "__main__":
    main()
