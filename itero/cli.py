"""`itero` command line: quickstart, train, report, compare, retest, eval, eval-chat, kl, grade, bandit, train-rm."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from itero.cli_args import positive_int

EPILOG = {
    "quickstart": """
        Builds a tiny Qwen2-architecture model and a character tokenizer, warms it up with SFT on
        worked arithmetic solutions, then runs iterative DPO (best-vs-worst pairs of 8 samples, the
        DPO-Positive loss) with a rule-based reward and prints the accuracy table per iteration and
        the path of the plot. About 9 minutes on 2 CPU cores.

        examples:
          itero quickstart
          itero quickstart loop.iterations=3 logging.name=short
          itero quickstart algorithm.loss=sigmoid algorithm.nll_weight=1 logging.name=dpo-nll   # DPO+NLL
          itero quickstart algorithm=raft training.epochs=8 logging.name=raft                    # RAFT
          itero quickstart loop.iterations=8 --force     # extend the finished run by 3 iterations
    """,
    "train": """
        Runs the online loop of CONFIG (YAML), with dotted overrides. Re-running the same command
        resumes a crashed or interrupted run at its first unfinished stage.

        examples:
          itero train configs/quickstart.yaml
          itero train configs/iterative_dpo.yaml algorithm.beta=0.2 loop.iterations=5
          itero train configs/raft.yaml algorithm.restart_from_base=true logging.name=restem

        --dry-run validates CONFIG, prints the stage plan (prompts, samples, tokens to generate,
        optimizer steps) and a GPU memory estimate per device for each model, and warns when it will
        not fit distributed.gpu_memory_gb; it loads no model and writes nothing:
          itero train configs/recipes/online_dpo_r1.yaml --dry-run
          itero train configs/recipes/online_dpo_r1.yaml distributed.num_processes=4 distributed.strategy=zero2 --dry-run
          itero train configs/recipes/samplers_safe_rlhf_mixp.yaml distributed.reference_device=cpu --dry-run
    """,
    "report": """
        Writes RUN_DIR/report.png (accuracy and reward per iteration, the SFT start as a line) and
        RUN_DIR/report.md, and prints the accuracy table.

        example:
          itero report runs/quickstart
    """,
    "eval": """
        Greedy (and with --n, sampled) responses on math benchmarks, graded; writes OUT/eval/<benchmark>.jsonl,
        results.md and results.json (benchmark columns + Average). Rerunning skips finished benchmarks.

        examples:
          itero eval Qwen/Qwen2.5-Math-7B --benchmarks math500,minerva_math,olympiadbench,aime24,amc23 --out runs/base
          itero eval runs/r1/iter_9/checkpoint --n 4 --temperature 0.6 --template qwen25-math-cot --out runs/r1
          itero eval runs/quickstart/base --template plain --max-new-tokens 64 --limit 5 --out runs/tiny
          itero eval MODEL --benchmarks math500,mine=data/mine.jsonl:question:answer --data-dir data
    """,
    "kl": """
        Monte-Carlo KL(policy || base) per response over samples from the policy at temperature 1, with its
        standard error.

        examples:
          itero kl runs/r1/iter_9/checkpoint Qwen/Qwen2.5-Math-7B --prompts data/math500/test.jsonl --n 4
          itero kl runs/quickstart/iter_7/checkpoint runs/quickstart/base --prompts prompts.jsonl --template plain --out kl.json
    """,
    "eval-chat": """
        Responses of a chat policy to a prompt set, each judged against a reference response (the
        dataset's, or another model's) by a reward model or an LLM judge behind an OpenAI-compatible
        endpoint (both orders, answers cached in OUT/judge_cache.jsonl). Reports the win rate (ties
        half), AlpacaEval 2's length-controlled win rate, both with standard errors, and with
        --reward-model / --base the mean reward and KL(policy || base). Writes OUT/chat_eval.json and
        OUT/chat_eval.jsonl (one line per response). See docs/chat-eval.md.

        examples:
          itero eval-chat --policy runs/rto/iter_4/checkpoint --prompts prompts.jsonl --reference-field chosen \\
            --judge rm:runs/rm --out runs/rto/chat/iter_4
          itero eval-chat --policy runs/rto/iter_4/checkpoint --prompts hf:tatsu-lab/alpaca_eval#alpaca_eval@eval \\
            --prompt-field instruction --reference-field output --template chat:{problem} \\
            --judge openai:Qwen/Qwen2.5-72B-Instruct --base-url http://127.0.0.1:8000/v1 --out runs/rto/alpaca
          itero eval-chat --policy runs/rto/iter_4/checkpoint --reference-model runs/rto/base --prompts prompts.jsonl \\
            --judge rm:runs/rm --reward-model runs/rm --base runs/rto/base --n 4 --temperature 1 --out runs/rto/chat/iter_4
          itero compare runs/rto/chat runs/ppo/chat --x kl --metric chat/mean_reward   # reward against KL
    """,
    "compare": """
        Puts several runs side by side: one curve per run of METRIC against the iteration, and a
        table of the start (SFT), best and last value of each run.

        examples:
          itero compare runs/quickstart runs/quickstart-dpo
          itero compare runs/online runs/gshf runs/mixp --metric eval/pass@4 --out runs/samplers
          itero compare runs/raft runs/grpo runs/ppo runs/vineppo --x seconds   # on a common wall-clock budget
          itero compare runs/raft runs/grpo runs/ppo runs/vineppo --x tokens    # ... or tokens generated
          itero compare runs/raft runs/grpo --x tokens --budget 1.38e6          # the value within 1.38 M tokens
          itero compare runs/raft runs/grpo --x seconds --until 5               # the first 5 iterations only
          itero compare runs/raft runs/grpo --metric retest/accuracy            # on fresh problems (itero retest first)
    """,
    "retest": """
        Re-evaluates a run's checkpoints greedily on more problems than its 200-problem test split,
        each paired with the start (the SFT model) problem by problem: accuracy, the difference with
        its 95 % interval, the problems gained and lost, McNemar's exact p-value. For the arithmetic
        task the problems are fresh: after the run's training problems in the task's sequence, so
        neither trained on nor in the test split. Writes RUN_DIR/retest.json; prints a table per run.
        It measures evaluation noise only; a second training seed (loop.seed) measures the rest.

        examples:
          itero retest runs/ppo                                   # every checkpoint, 2000 fresh problems
          itero retest runs/ppo runs/grpo --iterations 4,8 --fresh 5000
          itero retest runs/my-jsonl-run --fresh 0                # the run's own test split, paired
    """,
    "grade": """
        examples:
          itero grade --check --data-dir data                   # accept own golds, reject others' (benchmark folder)
          itero grade --responses out.jsonl --gold-field gold_answer --response-field response --out verdicts.jsonl
    """,
    "train-rm": """
        Trains a Bradley-Terry reward model (loss -log sigmoid(r_chosen - r_rejected), AdamW) on
        preference pairs, one JSON object per line with a prompt, a chosen and a rejected response.
        Prints train / validation pairwise accuracy per epoch; writes OUT/ (model + tokenizer via
        save_pretrained, metrics.json) only when training has finished.

        examples:
          itero train-rm prefs.jsonl --base tiny --out runs/rm-tiny --epochs 3 --lr 1e-3
          itero train-rm prefs.jsonl --base runs/quickstart/base --out runs/rm --val-fraction 0.2
          itero train-rm uf.jsonl --base Qwen/Qwen2.5-0.5B --out runs/rm --chosen-field good --rejected-field bad
    """,
    "bandit": """
        examples:
          itero bandit --setting exact --dtype float32 --out runs/bandit
          itero bandit --setting both --dtype both --samplers DPO-Unif DPO-Mix-P
    """,
}


def _add(sub, name: str, help: str):
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=textwrap.dedent(EPILOG.get(name, "")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itero", description="Online RL and preference optimization for language models."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error instead of its one-line message"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name, help in (
        ("quickstart", "Train a tiny model on arithmetic with SFT + iterative DPO on CPU (the default config)."),
        ("train", "Run the online loop from a YAML config with dotted overrides."),
    ):
        p = _add(sub, name, help)
        if name == "train":
            p.add_argument("config", help="YAML config file, e.g. configs/quickstart.yaml")
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="validate, print the stage plan and GPU memory per device; load no model, run nothing",
            )
        p.add_argument("overrides", nargs="*", help="dotted overrides key.sub=value")
        p.add_argument("--force", action="store_true", help="continue an existing run directory with a changed config")
        p.add_argument("--new", action="store_true", help="start a fresh run beside an existing one of the same name")
        p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")

    p = _add(sub, "report", "Plot a run's accuracy and reward per iteration and summarise it.")
    p.add_argument("run_dir")
    p = _add(sub, "compare", "Compare runs: one curve per run and a start / best / last table.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--metric",
        default="eval/greedy_accuracy",
        help="a key of metrics.jsonl, or retest/accuracy / retest/difference from itero retest "
        "(default: eval/greedy_accuracy)",
    )
    p.add_argument("--out", default="compare", help="output stem: writes OUT.png and OUT.md (default: ./compare)")
    p.add_argument(
        "--x",
        default="iteration",
        choices=("iteration", "seconds", "tokens", "kl"),
        help="x axis: iteration, cumulative wall-clock seconds, cumulative tokens generated, or kl: "
        "KL(policy || base) of itero eval-chat results (chat_eval.json) under each RUN_DIR",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="with --x seconds / tokens: the common budget of the table (default: the smallest run's total)",
    )
    p.add_argument("--until", type=positive_int, default=None, metavar="N", help="only iterations 0..N of each run")

    p = _add(sub, "retest", "Re-evaluate a run's checkpoints on many fresh problems, paired with the start.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--fresh",
        type=int,
        default=2000,
        help="fresh arithmetic problems to decode (default: 2000); 0 = the run's test split",
    )
    p.add_argument(
        "--iterations", default=None, help="comma-separated iterations (default: every one with a checkpoint)"
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")

    from itero.bandit import cli as bandit_cli
    from itero.evaluation import chat as chat_cli
    from itero.evaluation import cli as eval_cli
    from itero.evaluation import kl as kl_cli
    from itero.grading import cli as grading_cli
    from itero.rewards import cli as rm_cli

    eval_cli.add_arguments(
        _add(sub, "eval", "Evaluate a model on MATH500, GSM8K, AIME24, AMC23, Minerva Math, OlympiadBench.")
    )
    kl_cli.add_arguments(_add(sub, "kl", "Estimate KL(policy || base) per response, with its standard error."))
    chat_cli.add_arguments(
        _add(sub, "eval-chat", "Judge a chat policy against reference responses: win rate, LC win rate, reward, KL.")
    )
    grading_cli.add_arguments(
        _add(sub, "grade", "Grade math responses against gold answers, or run the grader's self-check.")
    )
    bandit_cli.add_arguments(_add(sub, "bandit", "The samplers paper's tabular bandit study: PNG + CSV in seconds."))
    rm_cli.add_arguments(_add(sub, "train-rm", "Train a Bradley-Terry reward model on chosen/rejected pairs (JSONL)."))
    return parser


def _train(args, config_path) -> int:
    import torch

    from itero.config import load_config
    from itero.loop import run
    from itero.tracking.progress import info
    from itero.tracking.report import write_report

    cfg = load_config(config_path, args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = run(cfg, force=args.force, new=args.new)
    from itero.distributed import current

    if not current().is_main:  # under torchrun / accelerate launch rank 0 reports
        return 0
    png, md, table = write_report(run_dir)
    info(f"\n{table}\n\nplot: {png}\nreport: {md}\nmetrics: {run_dir / 'metrics.jsonl'}")
    return 0


def _retest(args, parser) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from itero.evaluation.retest import format_table, retest_run

    hf_logging.disable_progress_bar()
    if args.fresh < 0:
        parser.error(f"--fresh {args.fresh}: give a number of problems >= 0")
    try:
        iterations = [int(k) for k in args.iterations.split(",")] if args.iterations else None
    except ValueError:
        parser.error(f"--iterations {args.iterations!r}: give comma-separated iteration numbers, e.g. 4,8")
    if args.threads:
        torch.set_num_threads(args.threads)
    for run_dir in args.run_dirs:
        try:
            rows = retest_run(run_dir, args.fresh, iterations)
        except ValueError as err:  # fresh problems asked of a task that cannot make them
            parser.error(str(err))
        print(f"\n{format_table(run_dir, rows)}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse ends a positional list at the first option: take the overrides written after one too
    # (`itero train cfg.yaml --threads 2 loop.seed=1`); anything else is still an error.
    if (
        extra
        and getattr(args, "overrides", None) is not None
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from itero.errors import IteroError

    try:
        if args.command == "train" and args.dry_run:
            from itero.planning.dry_run import dry_run

            text, warnings = dry_run(args.config, args.overrides)
            print(text + "".join(f"\n\nWARNING: {w}" for w in warnings))
            return 0
        if args.command in ("quickstart", "train"):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            return _train(args, None if args.command == "quickstart" else args.config)
        if args.command == "report":
            from itero.tracking.report import write_report

            png, md, table = write_report(args.run_dir)
            print(f"{table}\n\nplot: {png}\nreport: {md}")
            return 0
        if args.command == "compare":
            from itero.tracking.compare import compare

            try:
                png, table = compare(args.run_dirs, args.metric, args.out, args.x, args.budget, args.until)
            except ValueError as err:  # an option that does not fit the axis: nothing was written
                parser.error(str(err))
            print(f"{table}\n\nplot: {png}")
            return 0
        if args.command == "retest":
            return _retest(args, parser)
        if args.command in ("eval", "kl"):
            from transformers.utils import logging as hf_logging

            from itero.evaluation import cli as eval_cli
            from itero.evaluation import kl as kl_cli

            hf_logging.disable_progress_bar()
            return (eval_cli if args.command == "eval" else kl_cli).run(args)
        if args.command == "eval-chat":
            from transformers.utils import logging as hf_logging

            from itero.evaluation import chat as chat_cli

            hf_logging.disable_progress_bar()
            return chat_cli.run(args)
        if args.command == "grade":
            from itero.grading import cli as grading_cli

            return grading_cli.run(args)
        if args.command == "bandit":
            from itero.bandit import cli as bandit_cli

            return bandit_cli.run(args)
        if args.command == "train-rm":
            from transformers.utils import logging as hf_logging

            from itero.rewards import cli as rm_cli

            hf_logging.disable_progress_bar()
            return rm_cli.run(args)
    except (IteroError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
