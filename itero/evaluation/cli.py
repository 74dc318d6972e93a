"""``itero eval``: a model on math benchmarks, the way the source papers report it.

    itero eval MODEL [--benchmarks math500,aime24,...] [--n 4 --temperature 0.6] [--template qwen25-math-cot]
               [--max-new-tokens 3000] [--limit N] [--out DIR] [--data-dir DIR]

Writes DIR/eval/<benchmark>.jsonl (every response, its extracted answer and verdict), results.md and
results.json (benchmark columns + Average). Rerunning the same command skips finished benchmarks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from itero.cli_args import positive_int
from itero.evaluation.benchmarks import BUILTIN
from itero.evaluation.metrics import results_table
from itero.evaluation.runner import EvalSettings, check_folder, prepare, refuse_other_settings, run_benchmarks
from itero.tracking import progress
from itero.tracking.rundir import check_writable

DEFAULTS = EvalSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="hub model name or a folder written by save_pretrained")
    parser.add_argument(
        "--benchmarks",
        default=",".join(BUILTIN),
        help="comma-separated names, or NAME=FILE.jsonl[:PROBLEM_FIELD:ANSWER_FIELD] (default: all six)",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=DEFAULTS.n,
        help="sampled responses per problem for mean accuracy, pass@k and maj@k (0: greedy only)",
    )
    parser.add_argument("--temperature", type=float, default=DEFAULTS.temperature, help="for the n samples")
    parser.add_argument("--top-p", type=float, default=DEFAULTS.top_p, help="for the n samples")
    parser.add_argument(
        "--template",
        default=DEFAULTS.template,
        help="qwen25-math-cot, online-dpo-r1, vineppo-math, gsm8k-fewshot, plain; or a file / a string with {problem}",
    )
    parser.add_argument(
        "--stop", action="append", default=[], help="a stop string (repeatable), besides the template's"
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=DEFAULTS.max_new_tokens)
    parser.add_argument("--limit", type=positive_int, help="only the first N problems of each benchmark")
    parser.add_argument("--out", type=Path, help="output folder; results go to OUT/eval (default: runs/eval-<model>)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="local folder of the built-in benchmarks, laid out as <name>/test.jsonl "
        "(default: $ITERO_DATA_DIR, else each one's public Hugging Face dataset; see docs/data.md)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--batch-size", type=positive_int, default=64, help="rows per forward pass of the generator")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu", help="e.g. cpu or cuda")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--workers", type=positive_int, default=1, help="grader worker processes for symbolic checks")
    parser.add_argument(
        "--extraction",
        default="strict",
        choices=("strict", "lenient"),
        help="grader: strict reads a \\boxed{} answer or an answer marker; lenient also an unmarked last expression",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or stage lines")


def settings_from(args) -> EvalSettings:
    return EvalSettings(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        template=args.template,
        stop=tuple(args.stop),
        data_dir=str(args.data_dir) if args.data_dir else None,
        limit=args.limit,
        seed=args.seed,
        grader_workers=args.workers,
        extraction=getattr(args, "extraction", "strict"),
    )


def run(args) -> int:
    settings = settings_from(args)
    specs = [s for s in args.benchmarks.split(",") if s.strip()]
    template, benches = prepare(specs, settings)  # bad data or settings stop here, before the model loads
    out = args.out or Path("runs") / f"eval-{Path(args.model.rstrip('/')).name}"
    eval_dir = out / "eval"
    record = {"model": args.model, **settings.record(), "template_text": template.text, "template_stop": template.stop}
    refuse_other_settings(eval_dir, record)
    check_writable(eval_dir, "--out")

    import torch

    from itero.generation.hf import HFGenerator
    from itero.models.loading import load_model, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tokenizer = load_tokenizer(args.model)  # a bad model folder stops here, before anything is written
    model = load_model(args.model, dtype=args.dtype, device=args.device)
    check_benchmark_prompts(benches, template, tokenizer, model, settings.max_new_tokens)
    check_folder(eval_dir, record)
    generator = HFGenerator(model, tokenizer, batch_size=args.batch_size)
    results = run_benchmarks(
        generator, tokenizer, template, benches, settings, eval_dir, show_progress=not args.no_progress
    )
    progress.info(
        f"\n{results_table(results)}\n\n{time.perf_counter() - start:.1f}s; responses: {eval_dir}/<benchmark>.jsonl; "
        f"table: {eval_dir / 'results.md'}, {eval_dir / 'results.json'}"
    )
    return 0


def check_benchmark_prompts(benches, template, tokenizer, model, max_new_tokens: int) -> None:
    """Every prompt against the model's context, before the first write (``input_checks.check_lengths``):
    warned about, not refused, since a benchmark is scored whole, as its source's harness scores it."""
    from itero.input_checks import check_lengths
    from itero.models.loading import context_length

    context = context_length(model.config.to_dict())
    for bench in benches:
        lengths = [len(template.encode(p, tokenizer)) for p in bench.problems]
        names = [f"problem {i + 1}" for i in range(len(lengths))]
        check_lengths(lengths, names, context, max_new_tokens, bench.source, "--max-new-tokens", refuse=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="itero eval", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
