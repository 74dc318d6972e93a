"""``itero eval-chat``: a chat policy's responses judged against reference responses, as RTO and the samplers paper do.

    itero eval-chat --policy PATH --prompts FILE.jsonl|hf:NAME[#CONFIG][@SPLIT] --out DIR
                    (--reference-field FIELD | --reference-model PATH)
                    --judge rm:PATH | --judge openai:MODEL --base-url URL
                    [--n 1] [--temperature 0] [--max-new-tokens 256] [--limit N] [--template plain]
                    [--reward-model PATH] [--base PATH]

Writes DIR/chat_eval.jsonl (one line per policy response: prompt, both responses, their lengths, the
judge's verdicts, the preference, rewards) and DIR/chat_eval.json (win rate, length-controlled win
rate, mean reward, KL to the base; ``metrics`` holds them under ``chat/...`` keys for ``itero compare
--x kl``). The judges and the reward model read the prompt field's text as it is; the policy reads it
through ``--template``. See docs/chat-eval.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
from pathlib import Path

from itero.cli_args import positive_float, positive_int
from itero.errors import IteroError
from itero.evaluation import chat_metrics
from itero.evaluation.chat_judges import JudgeCache, OpenAIJudge, RewardModelJudge, parse_base_url
from itero.evaluation.templates import load_template
from itero.tracking import progress
from itero.tracking.rundir import atomic_write_json, atomic_write_jsonl

CACHE_FILE = "judge_cache.jsonl"


class ChatEvalError(IteroError, ValueError):
    """A bad option or prompt file, found before anything is loaded or written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="model folder or hub name whose responses are judged")
    parser.add_argument("--prompts", required=True, help="JSONL file, or hf:NAME[#CONFIG][@SPLIT] (split: test)")
    parser.add_argument("--prompt-field", default="prompt", help="field holding the instruction (default: prompt)")
    ref = parser.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference-field", help="field holding the reference response")
    ref.add_argument("--reference-model", help="a model whose response (one per prompt) is the reference")
    parser.add_argument("--judge", required=True, help="rm:PATH (a reward model) or openai:MODEL (with --base-url)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint of the judge, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--judge-workers", type=positive_int, default=8, help="requests in flight at once")
    parser.add_argument("--judge-timeout", type=positive_float, default=120.0, help="seconds per request")
    parser.add_argument("--judge-tries", type=positive_int, default=5, help="tries per request (backoff 1, 2, 4 s ...)")
    parser.add_argument("--template", default="plain", help="a named template, a file, chat:TEXT or a {problem} string")
    parser.add_argument("--n", type=positive_int, default=1, help="policy responses per prompt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256)
    parser.add_argument("--limit", type=positive_int, help="only the first N prompts")
    parser.add_argument("--reward-model", help="also report the mean reward of the policy's responses under it")
    parser.add_argument("--base", help="also report KL(policy || base) per response (itero kl's estimator)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=64, help="rows per forward pass when generating")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--out", type=Path, required=True, help="folder for chat_eval.json/.jsonl and the judge cache")
    parser.add_argument("--no-progress", action="store_true")


def read_prompts(args) -> list[dict]:
    """The prompt rows, checked: both fields present and strings, at least one row."""
    from itero.tasks.hub import is_hub, read_hub
    from itero.tasks.jsonl import read_jsonl

    fields = (args.prompt_field,) + ((args.reference_field,) if args.reference_field else ())
    rows = read_hub(args.prompts, fields) if is_hub(args.prompts) else read_jsonl(args.prompts, fields)
    rows = rows[: args.limit or None]
    if not rows:
        raise ChatEvalError(f"{args.prompts} has no prompts")
    for i, row in enumerate(rows, 1):
        for name in fields:
            if not isinstance(row[name], str):
                raise ChatEvalError(f"{args.prompts}: row {i}: field {name!r} must be a string")
    return rows


def check_options(args) -> None:
    """Every option that can be checked without loading a model, so a mistake costs nothing."""
    from itero.models.loading import check_model_path

    if args.temperature < 0:
        raise ChatEvalError(f"--temperature {args.temperature}: give 0 (greedy) or more")
    if args.n > 1 and args.temperature == 0:
        raise ChatEvalError(f"--n {args.n} with --temperature 0 repeats one greedy response; give a temperature > 0")
    kind, _, target = args.judge.partition(":")
    if kind not in ("rm", "openai") or not target:
        raise ChatEvalError(f"--judge {args.judge!r}: give rm:PATH or openai:MODEL")
    if kind == "openai":
        if not args.base_url:
            raise ChatEvalError(f"--judge {args.judge} needs --base-url (an OpenAI-compatible endpoint)")
        parse_base_url(args.base_url)
    for path in (args.policy, args.reference_model, target if kind == "rm" else None, args.reward_model, args.base):
        if path:
            check_model_path(path)


def generate(path: str, prompts: list[str], template, args, n: int, seed: int) -> list[list[str]]:
    """``n`` responses per prompt from the model at ``path``."""
    from itero.generation.base import SamplingParams
    from itero.generation.hf import HFGenerator
    from itero.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(path)
    model = load_model(path, dtype=args.dtype, device=args.device)
    ids = [template.encode(p, tokenizer) for p in prompts]
    params = SamplingParams(
        n=n, temperature=args.temperature, max_new_tokens=args.max_new_tokens, stop=template.stop, seed=seed
    )
    texts = HFGenerator(model, tokenizer, batch_size=args.batch_size).generate(ids, params).response_texts
    _free(model)
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


def kl_to_base(args, prompts: list[str], template) -> dict:
    """``itero kl``'s estimate over these prompts: n samples each at temperature 1."""
    from itero.evaluation.kl import estimate_kl
    from itero.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(args.policy)
    if load_tokenizer(args.base).get_vocab() != tokenizer.get_vocab():
        raise ChatEvalError(f"--base {args.base} has another tokenizer than the policy; the KL needs one vocabulary")
    policy = load_model(args.policy, dtype=args.dtype, device=args.device)
    base = load_model(args.base, dtype=args.dtype, device=args.device)
    ids = [template.encode(p, tokenizer) for p in prompts]
    estimate = estimate_kl(
        policy,
        base,
        tokenizer,
        ids,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
    )
    _free(policy, base)
    return dataclasses.asdict(estimate)


def _free(*models) -> None:
    import torch

    del models
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def make_judge(args):
    kind, _, target = args.judge.partition(":")
    if kind == "rm":
        return RewardModelJudge(target, device=args.device)
    return OpenAIJudge(
        target,
        args.base_url,
        JudgeCache(args.out / CACHE_FILE),
        api_key=os.environ.get(args.api_key_env),
        timeout=args.judge_timeout,
        tries=args.judge_tries,
        workers=args.judge_workers,
    )


def pair_rows(rows: list[dict], args, policy: list[list[str]], reference: list[str]) -> list[dict]:
    """One row per policy response, paired with its prompt's reference."""
    out = []
    for i, (row, responses) in enumerate(zip(rows, policy, strict=True)):
        for j, response in enumerate(responses):
            out.append(
                {
                    "prompt_index": i,
                    "sample": j,
                    "prompt": row[args.prompt_field],
                    "policy": response,
                    "reference": reference[i],
                    "policy_length": len(response),
                    "reference_length": len(reference[i]),
                }
            )
    return out


def summarise(pairs: list[dict]) -> dict:
    """The numbers of chat_eval.json from the per-response rows (the test recomputes them the same way)."""
    prefs = [p["preference"] for p in pairs]
    groups = [p["prompt_index"] for p in pairs]
    raw = chat_metrics.win_rate(prefs, groups)
    lc = chat_metrics.length_controlled(prefs, [p["policy_length"] - p["reference_length"] for p in pairs], groups)
    out = {
        "win_rate": raw.win_rate,
        "win_rate_stderr": raw.stderr,
        "wins": raw.wins,
        "ties": raw.ties,
        "losses": raw.losses,
        "num_pairs": raw.num_pairs,
        "num_prompts": raw.num_prompts,
        "lc_win_rate": lc.win_rate,
        "lc_win_rate_stderr": lc.stderr,
        "lc_model": {"intercept": lc.intercept, "length_coef": lc.length_coef, "length_scale": lc.length_scale},
        "mean_policy_length": sum(p["policy_length"] for p in pairs) / len(pairs),
        "mean_reference_length": sum(p["reference_length"] for p in pairs) / len(pairs),
    }
    if "unparsed" in pairs[0]:
        out["unparsed_answers"] = sum(p["unparsed"] for p in pairs)
    if "reward" in pairs[0]:
        out["mean_reward"], out["mean_reward_stderr"] = chat_metrics.mean_and_stderr(
            [p["reward"] for p in pairs], groups
        )
        out["reference_mean_reward"] = sum(p["reference_reward"] for p in pairs) / len(pairs)
    return out


def flat_metrics(summary: dict, kl: dict | None) -> dict:
    """``chat/...`` keys for ``itero compare --x kl``."""
    keys = ("win_rate", "win_rate_stderr", "lc_win_rate", "lc_win_rate_stderr", "mean_reward", "mean_reward_stderr")
    out = {f"chat/{k}": summary[k] for k in keys if k in summary}
    if kl is not None:
        out["chat/kl"], out["chat/kl_stderr"] = kl["mean"], kl["stderr"]
    return out


def run(args) -> int:
    check_options(args)
    template = load_template(args.template)
    rows = read_prompts(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    prompts = [row[args.prompt_field] for row in rows]
    progress.info(f"[eval-chat] {len(prompts)} prompts, {args.n} response(s) each from {args.policy}")
    policy = generate(args.policy, prompts, template, args, args.n, args.seed)
    if args.reference_model:
        reference = [r[0] for r in generate(args.reference_model, prompts, template, args, 1, args.seed + 1)]
    else:
        reference = [row[args.reference_field] for row in rows]
    kl = kl_to_base(args, prompts, template) if args.base else None
    pairs = pair_rows(rows, args, policy, reference)
    judge = make_judge(args)
    verdicts = judge.judge([p["prompt"] for p in pairs], [p["policy"] for p in pairs], [p["reference"] for p in pairs])
    pairs = [{**p, **v} for p, v in zip(pairs, verdicts, strict=True)]
    if args.reward_model:
        rm = (
            judge
            if args.judge == f"rm:{args.reward_model}"
            else RewardModelJudge(args.reward_model, device=args.device)
        )
        scored = rm.judge([p["prompt"] for p in pairs], [p["policy"] for p in pairs], [p["reference"] for p in pairs])
        pairs = [
            {**p, "reward": s["policy_score"], "reference_reward": s["reference_score"]} for p, s in zip(pairs, scored)
        ]
    summary = summarise(pairs)
    report = {
        "policy": args.policy,
        "reference": args.reference_model or f"field {args.reference_field!r}",
        "judge": judge.name,
        "prompts": str(args.prompts),
        "n": args.n,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        **summary,
        "reward_model": args.reward_model,
        "kl": kl,
        "metrics": flat_metrics(summary, kl),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(args.out / "chat_eval.jsonl", pairs)
    atomic_write_json(args.out / "chat_eval.json", report)
    progress.info(format_summary(report) + f"\nwrote {args.out / 'chat_eval.json'}")
    return 0


def format_summary(report: dict) -> str:
    lines = [
        f"win rate {100 * report['win_rate']:.1f}% ± {100 * report['win_rate_stderr']:.1f} "
        f"({report['wins']} wins, {report['ties']} ties, {report['losses']} losses of {report['num_pairs']})",
        f"length-controlled win rate {100 * report['lc_win_rate']:.1f}% ± {100 * report['lc_win_rate_stderr']:.1f}",
    ]
    if "mean_reward" in report:
        lines.append(f"mean reward {report['mean_reward']:.4f} ± {report['mean_reward_stderr']:.4f}")
    if report["kl"]:
        lines.append(f"KL(policy ‖ base) {report['kl']['mean']:.4f} ± {report['kl']['stderr']:.4f} nats per response")
    return "\n".join(lines)
