"""``itero grade``: grade a JSONL file of responses, or run the real-data self-check.

itero grade --responses rollouts.jsonl [--gold-field gold_answer] [--response-field response]
            [--out verdicts.jsonl] [--workers N] [--timeout 2] [--extraction strict|lenient] [--explain]
itero grade --check [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from itero.cli_args import positive_float, positive_int
from itero.tasks.jsonl import DataFileError, read_jsonl

from .explain import explain, format_explanation
from .extract import MODES
from .grader import DEFAULT_TIMEOUT, grade_batch


class InputError(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--responses", type=Path, help="JSONL file, one response and its gold answer per line")
    parser.add_argument("--gold-field", default="gold_answer", help="field holding the gold answer")
    parser.add_argument("--response-field", default="response", help="field holding the model response")
    parser.add_argument(
        "--out", type=Path, help="where to write per-row verdicts (default: <responses>.verdicts.jsonl)"
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="sympy worker processes")
    parser.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, help="hard limit per case, seconds")
    parser.add_argument(
        "--extraction",
        default="strict",
        choices=MODES,
        help="strict: the \\boxed{} answer or an answer marker; lenient: also an unmarked response's last expression",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print, per row, the extracted answer, the forms compared and the rule"
    )
    parser.add_argument(
        "--check", action="store_true", help="self-check on MATH500 / GSM8K / Minerva reference solutions"
    )
    parser.add_argument("--data-dir", type=Path, help="data folder for --check (default: ../shared/data from the repo)")


def read_pairs(path: Path, response_field: str, gold_field: str) -> list[tuple[str, str]]:
    """(response, gold) per row; a row without a response counts as an answer-less response."""
    try:
        rows = read_jsonl(path, required=(gold_field, response_field))  # a misspelt field grades nothing
    except DataFileError as error:
        raise InputError(str(error)) from None
    return [(str(row.get(response_field) or ""), str(row[gold_field])) for row in rows]


def _grade_file(args) -> int:
    try:
        pairs = read_pairs(args.responses, args.response_field, args.gold_field)
    except OSError as error:
        print(f"error: cannot read {args.responses}: {error.strerror}", file=sys.stderr)
        return 2
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    mode = getattr(args, "extraction", "strict")
    verdicts = grade_batch(pairs, workers=args.workers, timeout=args.timeout, mode=mode)
    if getattr(args, "explain", False):
        for index, (response, gold) in enumerate(pairs):
            print(format_explanation(index, explain(response, gold, mode, args.timeout)))
    out = args.out or args.responses.with_suffix(".verdicts.jsonl")
    temporary = out.with_name(out.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        for index, verdict in enumerate(verdicts):
            handle.write(json.dumps({"row": index, **asdict(verdict)}, ensure_ascii=False) + "\n")
    temporary.replace(out)
    correct = sum(v.correct for v in verdicts)
    no_answer = sum(v.extracted is None for v in verdicts)
    timeouts = sum(v.timed_out for v in verdicts)
    print(
        f"accuracy {correct}/{len(verdicts)} = {100 * correct / max(len(verdicts), 1):.2f}%"
        f"  (no answer: {no_answer}, timed out: {timeouts})  verdicts -> {out}"
    )
    return 0


def _check(args) -> int:
    from .check import default_data_dir, format_report, run_check

    data_dir = args.data_dir or default_data_dir()
    if not Path(data_dir).is_dir():
        print(f"error: data folder {data_dir} not found (use --data-dir)", file=sys.stderr)
        return 2
    results = run_check(data_dir, workers=args.workers)
    print(format_report(results))
    return 0 if all(result.passed for result in results) else 1


def run(args) -> int:
    if args.check:
        return _check(args)
    if args.responses is None:
        print("error: give --responses FILE.jsonl or --check", file=sys.stderr)
        return 2
    return _grade_file(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="itero grade", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
