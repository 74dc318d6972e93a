"""itero against TRL on the same job, in one command (see benchmarks/vs_trl.py for usage)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import evaluate, report
from .prepare import build_sft, export_prompts
from .settings import JOBS, smoke

SIDES = ("itero", "trl")
SCRIPT = Path(__file__).resolve().parents[1] / "vs_trl.py"  # each side runs as this script's --worker


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="vs_trl.py",
        description=sys.modules["__main__"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--job", choices=tuple(JOBS), default="grpo")
    p.add_argument("--seconds", type=float, default=900.0, help="training wall-clock per side (default 900)")
    p.add_argument(
        "--mode",
        choices=("parallel", "alternate"),
        default="parallel",
        help="parallel: both at once; alternate: itero, then TRL (default parallel)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per side (default 1)")
    p.add_argument("--eval-threads", type=int, default=2, help="torch threads of the evaluation (default 2)")
    p.add_argument("--problems", type=int, default=None, help="fresh evaluation problems (default 2000; smoke 12)")
    p.add_argument("--sft", type=Path, default=None, help="an SFT checkpoint (RUN/sft/checkpoint); default: built")
    p.add_argument("--out", type=Path, default=None, help="work folder (default runs/vs_trl_<job>[_smoke])")
    p.add_argument("--max-rounds", type=int, default=200, help="TRL's max_steps in rounds (default 200)")
    p.add_argument(
        "--prompts-per-round", type=int, default=None, help="override the job's prompts per round (a shorter trial)"
    )
    p.add_argument("--smoke", action="store_true", help="tiny model, few prompts, short rounds (CI)")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.spec = smoke(JOBS[args.job]) if args.smoke else JOBS[args.job]
    if args.prompts_per_round:
        args.spec = dataclasses.replace(args.spec, prompts_per_round=args.prompts_per_round)
    args.problems = args.problems or (12 if args.smoke else 2000)  # smoke: 1-digit sums leave 13 fresh
    args.out = args.out or Path("runs") / f"vs_trl_{args.job}{'_smoke' if args.smoke else ''}"
    return args


def worker(args) -> None:
    side_dir = args.out / args.worker
    if args.worker == "itero":
        from .itero_side import run

        run(args.spec, str(args.sft), side_dir, args.seconds, args.threads)
    else:
        from .trl_side import run

        run(args.spec, str(args.sft), args.out / "prompts.jsonl", side_dir, args.seconds, args.threads, args.max_rounds)


def launch(args, side: str) -> subprocess.Popen:
    side_dir = args.out / side
    shutil.rmtree(side_dir, ignore_errors=True)  # a fresh race: itero would otherwise resume its run
    side_dir.mkdir(parents=True)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--worker",
        side,
        "--job",
        args.job,
        "--seconds",
        str(args.seconds),
        "--threads",
        threads,
        "--sft",
        str(args.sft),
        "--out",
        str(args.out),
        "--max-rounds",
        str(args.max_rounds),
    ]
    cmd += ["--smoke"] if args.smoke else []
    cmd += ["--prompts-per-round", str(args.prompts_per_round)] if args.prompts_per_round else []
    log = open(side_dir / "log.txt", "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def race(args) -> list[list[float]]:
    """Both sides for ``args.seconds`` each; returns the 1-minute load average sampled every 5 s."""
    order = [SIDES] if args.mode == "parallel" else [(s,) for s in SIDES]
    samples = []
    for group in order:
        procs = {s: launch(args, s) for s in group}
        deadline = time.time() + args.seconds + 600  # startup and a last save; a hung worker is killed
        while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
            samples.append([time.time(), os.getloadavg()[0]])
            time.sleep(min(5.0, args.seconds / 4))
        for side, p in procs.items():
            if p.poll() is None:
                p.kill()
            if p.wait() != 0:
                print(f"{side} exited with {p.returncode}: see {args.out / side / 'log.txt'}", file=sys.stderr)
    return samples


def versions() -> dict:
    import torch
    import transformers
    import trl

    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {"itero": sha, "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.sft = args.sft or build_sft(args.spec, args.out, args.eval_threads)
    export_prompts(args.spec, args.out / "prompts.jsonl")
    before, t0 = os.getloadavg(), time.perf_counter()
    samples = race(args)
    after, t1 = os.getloadavg(), time.perf_counter()
    starts, rounds = {}, {}
    for side in SIDES:
        starts[side], rounds[side] = evaluate.read_rounds(args.out / side / "rounds.jsonl")
    accuracy = evaluate.evaluate(args.spec, args.sft, args.out, rounds, args.problems, args.eval_threads)
    print(f"race {t1 - t0:.0f} s, evaluation {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    result = {
        "job": args.job,
        "mode": args.mode,
        "seconds": args.seconds,
        "smoke": args.smoke,
        "settings": {k: v for k, v in vars(args.spec).items() if k != "sft_overrides"},
        "sft_checkpoint": str(args.sft),
        "versions": versions(),
        "cpu_count": os.cpu_count(),
        "threads": {side: starts[side].get("torch_threads") for side in SIDES},
        "clock_started": {side: starts[side].get("start") for side in SIDES},  # epoch seconds: the overlap
        "load": {"before": before, "after": after, "samples": samples},
        "sides": {side: {**report.summarise(rounds[side]), "round_log": rounds[side]} for side in SIDES},
        "accuracy": accuracy,
    }
    paths = report.write(result, args.out)
    print(paths["md"].read_text())
    print(f"json: {paths['json']}\nplot: {paths['png']}")
    return 0
