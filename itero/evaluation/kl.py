"""KL(π ‖ π_base) of a trained policy from its base: E_{y~π}[Σ_t log π(y_t | ·) − log π_base(y_t | ·)].

The Monte-Carlo estimate over responses sampled from the policy at temperature 1 (the KL of the
policy itself, not of a tempered sampler), with its standard error. Both log-probs come from the
same learner forward (``compute_logprobs``), not the sampler's own: the two code paths differ by
float noise, and a policy equal to its base must measure exactly 0. Truncated responses count with
the tokens they have, as in Online-RLHF's ``sample_eval_kl``.

    itero kl POLICY BASE --prompts FILE.jsonl [--prompt-field problem] [--n 4] [--max-new-tokens 256]
             [--template plain] [--limit N] [--out kl.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from itero.cli_args import positive_int
from itero.evaluation.templates import load_template
from itero.tasks.jsonl import read_jsonl
from itero.tracking import progress
from itero.tracking.rundir import atomic_write_json


@dataclass(frozen=True)
class KLEstimate:
    mean: float  # nats per response
    stderr: float  # of the mean, over all samples (see estimate_kl)
    num_samples: int
    num_prompts: int
    mean_per_token: float  # Σ KL / Σ response tokens
    mean_response_length: float
    truncation_rate: float


def estimate_kl(
    policy,
    base,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    *,
    n: int = 4,
    max_new_tokens: int = 256,
    seed: int = 0,
    batch_size: int = 64,
    micro_batch_size: int = 16,
    chunk: int = 64,
    show_progress: bool = False,
) -> KLEstimate:
    """``prompts`` are token ids; ``n`` samples each. The standard error treats all samples as independent:
    the n samples of one prompt are, given the prompt, so for a fixed prompt set this is, if anything, conservative."""
    import torch

    from itero.generation.base import SamplingParams
    from itero.generation.hf import HFGenerator
    from itero.training.forward import compute_logprobs

    generator = HFGenerator(policy, tokenizer, batch_size=batch_size)
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new_tokens)
    per_sample: list[float] = []
    tokens = truncated = 0
    with progress.stage("[kl] sample and score", len(prompts), show_progress) as advance:
        for start in range(0, len(prompts), chunk):
            batch = generator.generate(prompts[start : start + chunk], dataclasses.replace(params, seed=seed + start))
            difference = compute_logprobs(policy, batch, micro_batch_size) - compute_logprobs(
                base, batch, micro_batch_size
            )
            per_sample += difference.sum(-1).tolist()  # (B,): both are 0 past each response's end
            tokens += int(batch.response_lengths.sum())
            truncated += int(batch.truncated.sum())
            advance(len(prompts[start : start + chunk]))
    values = torch.tensor(per_sample, dtype=torch.float64)
    count = len(per_sample)
    stderr = float(values.std()) / math.sqrt(count) if count > 1 else float("nan")
    return KLEstimate(
        mean=float(values.mean()),
        stderr=stderr,
        num_samples=count,
        num_prompts=len(prompts),
        mean_per_token=float(values.sum()) / max(tokens, 1),
        mean_response_length=tokens / count,
        truncation_rate=truncated / count,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", help="the trained model (hub name or save_pretrained folder); samples come from it")
    parser.add_argument("base", help="the model it started from; must share the policy's tokenizer")
    parser.add_argument("--prompts", type=Path, required=True, help="JSONL file of prompts")
    parser.add_argument("--prompt-field", default="problem", help="field holding the prompt text")
    parser.add_argument("--n", type=positive_int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256)
    parser.add_argument("--template", default="plain", help="a named template, a file, or a string with {problem}")
    parser.add_argument("--limit", type=positive_int, help="only the first N prompts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=64, help="rows per forward pass of the generator")
    parser.add_argument("--micro-batch-size", type=positive_int, default=16, help="rows per forward pass when scoring")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--out", type=Path, help="write the estimate as JSON here")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.n < 1 or args.max_new_tokens < 1:
        print(f"error: need --n >= 1 and --max-new-tokens >= 1; got {args.n}, {args.max_new_tokens}", file=sys.stderr)
        return 2
    template = load_template(args.template)
    rows = read_jsonl(args.prompts, required=(args.prompt_field,))[: args.limit or None]
    if not rows:
        print(f"error: {args.prompts} has no prompts", file=sys.stderr)
        return 2

    import torch

    from itero.models.loading import load_model, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.policy)
    if load_tokenizer(args.base).get_vocab() != tokenizer.get_vocab():
        print(
            f"error: {args.policy} and {args.base} have different tokenizers; the KL of their token "
            "distributions needs one vocabulary",
            file=sys.stderr,
        )
        return 2
    policy = load_model(args.policy, dtype=args.dtype, device=args.device)
    base = load_model(args.base, dtype=args.dtype, device=args.device)
    prompts = [template.encode(str(row[args.prompt_field]), tokenizer) for row in rows]
    result = estimate_kl(
        policy,
        base,
        tokenizer,
        prompts,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        show_progress=not args.no_progress,
    )
    progress.info(
        f"KL(policy ‖ base) = {result.mean:.4f} ± {result.stderr:.4f} nats per response "
        f"({result.mean_per_token:.4f} per token; {result.num_samples} samples of {result.num_prompts} prompts, mean length {result.mean_response_length:.1f}, "
        f"{result.truncation_rate:.1%} truncated)"
    )
    if args.out:
        atomic_write_json(args.out, {"policy": args.policy, "base": args.base, **dataclasses.asdict(result)})
    return 0
