"""`itero bandit`: the samplers paper's tabular simulation, written as a PNG figure and a CSV."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from itero.bandit.env import DTYPES
from itero.bandit.plot import write_csv, write_png
from itero.bandit.samplers import SAMPLERS, resolve
from itero.bandit.simulate import SETTINGS, Trajectory, floor_step, run_all
from itero.cli_args import positive_float


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="both",
                        help="exact: population gradient, lr 10, 100 steps; empirical: 8192 sampled "
                             "pairs per step, lr 0.05, 3000 steps")  # fmt: skip
    parser.add_argument("--dtype", choices=(*DTYPES, "both"), default="float32")
    parser.add_argument("--seed", type=int, default=1234567, help="seeds the sampled pairs and labels")
    parser.add_argument("--out", type=Path, default=Path("runs/bandit"), help="directory for PNG and CSV")
    parser.add_argument("--samplers", nargs="+", metavar="NAME",
                        help=f"any of {', '.join(SAMPLERS)} (case-insensitive, 'mix-p-star' for Mix-P*); "
                             "default: the paper's three for the setting")  # fmt: skip
    parser.add_argument("--steps", type=_positive, help="override the setting's number of updates")
    parser.add_argument("--lr", type=positive_float, help="override the setting's SGD learning rate")
    parser.add_argument("--pairs", type=_positive, help="override the pairs drawn per empirical step")


def _summary(runs: dict[str, Trajectory]) -> list[str]:
    header = ("sampler", "steps to floor", "floor", "final Param Diff", "final Value Diff")
    lines = ["  {:<11} {:>14} {:>10} {:>16} {:>16}".format(*header)]
    for name, run in runs.items():
        floor = floor_step(run.param_diff)
        reached = "not levelled" if floor is None else str(floor.step)
        level = "-" if floor is None else f"{floor.level:.3g}"
        lines.append(f"  {name:<11} {reached:>14} {level:>10} {run.param_diff[-1].item():>16.4g} "
                     f"{run.value_diff[-1].item():>16.4g}")  # fmt: skip
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        samplers = tuple(resolve(s) for s in args.samplers) if args.samplers else None
    except ValueError as e:
        print(f"itero bandit: {e}", file=sys.stderr)
        return 2
    settings = tuple(SETTINGS) if args.setting == "both" else (args.setting,)
    dtypes = tuple(DTYPES) if args.dtype == "both" else (args.dtype,)
    for name in settings:
        setting = SETTINGS[name]
        if args.pairs is not None and setting.num_pairs is not None:
            setting = replace(setting, num_pairs=args.pairs)
        for dtype in dtypes:
            start = time.perf_counter()
            runs = run_all(setting, samplers, dtype=DTYPES[dtype], seed=args.seed, lr=args.lr, steps=args.steps)
            seconds = time.perf_counter() - start
            lr = setting.lr if args.lr is None else args.lr
            stem = args.out / f"bandit_{name}_{dtype}"
            png = write_png(stem.with_suffix(".png"), f"{name} gradients, β = 3, lr {lr:g}, {dtype}", runs)
            csv = write_csv(stem.with_suffix(".csv"), name, dtype, runs)
            print(f"{name} / {dtype}: {seconds:.2f} s (seed {args.seed})")
            print("\n".join(_summary(runs)))
            print(f"  wrote {png}\n  wrote {csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="itero bandit", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
