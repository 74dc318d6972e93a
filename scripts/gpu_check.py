"""The GPU path of itero on random-weight models with Qwen2.5-0.5B's and 1.5B's shapes, in one command.

For each shape: build and save the model, load it through itero's loader; itero's hf generator
against ``model.generate`` (tokens/s); one GRPO learner step (tokens/s, model FLOPs utilisation);
peak memory against the dry run's plan; a LoRA step; FSDP2 on one rank (NCCL on CUDA) with a
gathered checkpoint reloaded. Writes OUT/gpu_check.json and OUT/gpu_check.md (docs/results/gpu.md
says how to run it and what each column means). Each check runs in its own try/except; once
``--budget-s`` is spent the remaining checks are skipped, not started. Both files are rewritten after
every check, so a run stopped from outside leaves the checks it finished.

    python scripts/gpu_check.py --device cuda --out gpu_check_out            # sized for < 8 min on one H100
    python scripts/gpu_check.py --device cpu --shapes tiny --out /tmp/gc     # what CI runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # itero and benchmarks/ without an install

import torch  # noqa: E402
import transformers  # noqa: E402
from gpu_check_parts.checks import CHECKS, ShapeRun  # noqa: E402
from gpu_check_parts.report import markdown  # noqa: E402
from gpu_check_parts.setup import SHAPES, WORKLOADS, versions  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    p.add_argument("--shapes", default="0.5b,1.5b", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip the checks not started by then")
    p.add_argument("--checks", default=",".join(CHECKS), help="comma-separated subset, in this order")
    args = p.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    args.checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = [s for s in args.shapes if s not in SHAPES] + [c for c in args.checks if c not in CHECKS]
    if unknown:
        p.error(f"unknown shape or check: {', '.join(unknown)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device; use --device cpu")
    return args


def run_check(name: str, run: ShapeRun, started: float, budget_s: float) -> dict:
    """One check's record: its measurements and passed / failed (with the error) / skipped."""
    elapsed = time.perf_counter() - started
    if elapsed > budget_s:
        return {"status": "skipped", "reason": f"budget of {budget_s:.0f} s spent ({elapsed:.0f} s)"}
    if name != "build" and run.results.get("build", {}).get("status") != "passed":
        return {"status": "skipped", "reason": "the model was not built"}
    t0 = time.perf_counter()
    try:
        record = CHECKS[name](run)
        record["status"] = "failed" if record.get("problems") else "passed"
    except Exception as err:  # one failure must not hide the others
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:500]}
        record["traceback"] = traceback.format_exc(limit=8)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


def progress(started: float, shape: str, name: str, record: dict) -> None:
    note = record.get("error") or record.get("reason") or "; ".join(record.get("problems") or [])
    print(
        f"[{time.perf_counter() - started:7.1f} s] {shape:>5} {name:<10} {record['status']:<7} "
        f"{record.get('seconds', 0):7.2f} s {note}".rstrip(),
        flush=True,
    )


def write(result: dict, out: Path, started: float) -> None:
    """Both files, rewritten after every check: a run killed from outside leaves what it had."""
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))


def main(argv=None) -> int:
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # one progress line per check instead
    device = torch.device(args.device, 0) if args.device == "cuda" else torch.device("cpu")
    work = WORKLOADS[args.device]
    started = time.perf_counter()
    result = {"env": versions(device), "workload": asdict(work), "budget_s": args.budget_s, "shapes": {}}
    print(f"gpu_check: {result['env']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for shape in args.shapes:
            run = ShapeRun(shape, Path(tmp) / shape, work, device)
            result["shapes"][shape] = run.results
            for name in args.checks:
                run.results[name] = run_check(name, run, started, args.budget_s)
                progress(started, shape, name, run.results[name])
                write(result, args.out, started)
            run.free_model()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    write(result, args.out, started)
    failed = [
        f"{s}/{c}" for s, checks in result["shapes"].items() for c, r in checks.items() if r["status"] != "passed"
    ]
    print(
        f"wrote {args.out}/gpu_check.json and gpu_check.md in {result['elapsed_s']} s; not passed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
