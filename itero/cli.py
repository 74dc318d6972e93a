"""`itero` command line: quickstart, train, report, compare, retest, eval, eval-chat, kl, grade, bandit, train-rm, export."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from itero.cli_args import positive_int
from itero.cli_examples import EPILOG


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
    from itero.models import export as export_cli

    export_cli.add_arguments(
        _add(sub, "export", "Write a run's checkpoint as a plain save_pretrained folder (LoRA merged).")
    )
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
        if args.command == "export":
            from itero.models import export as export_cli

            return export_cli.run(args)
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
