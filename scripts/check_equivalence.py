"""Do two revisions of itero train the same? Runs presets at tiny shapes from a clone of each revision
and compares every iteration's ``metrics.jsonl`` fields, timings left out.

    python scripts/check_equivalence.py --base 0401256 --new HEAD --out /tmp/equiv
    python scripts/check_equivalence.py --base main --new HEAD --presets grpo rto --iterations 3

A refactor of the loop, the stages or the model pool should change no number: each preset is run
with 1 thread in each revision's clone (``PYTHONPATH`` pointing at it, this checkout's ``.venv``), and
the fields must agree to ``--rtol`` (float results of one machine, one thread: normally bitwise).
Exit status 1 when any field differs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["quickstart", "grpo", "ppo", "vineppo", "rto", "dapo", "raft", "iterative_dpo"]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import TINY_RUN  # noqa: E402  the tests' tiny shapes: one place says what "tiny" is

# a preset keeps its own algorithm; the iteration count is --iterations
TINY = [o for o in TINY_RUN if not o.startswith(("algorithm=", "loop.iterations="))]
TIMING = ("seconds", "per_second", "elapsed", "time", "eta")


def checkout(rev: str, dest: Path) -> Path:
    if not dest.exists():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "fetch", "-q", str(ROOT)], check=True)
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True, text=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", sha.stdout.strip()], check=True)
    return dest


def run_preset(src: Path, preset: str, runs: Path, iterations: int) -> Path:
    out = runs / preset
    if (out / "metrics.jsonl").exists():
        return out
    overrides = [*TINY, f"loop.iterations={iterations}", f"logging.name={preset}", f"logging.run_dir={runs}"]
    if preset == "dapo":  # a tiny task's groups are rarely mixed: keep whatever the first round gives
        overrides.append("algorithm.train_when_capped=true")
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    code = "import sys; from itero.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "train", str(src / "configs" / f"{preset}.yaml"), *overrides, "--threads", "1"]
    subprocess.run(cmd, env=env, check=True, cwd=src, stdout=subprocess.DEVNULL)
    return out


def numbers(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


def differences(a: list[dict], b: list[dict], rtol: float) -> list[str]:
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"]
    out = []
    for i, (ra, rb) in enumerate(zip(a, b)):
        for key in sorted(set(ra) | set(rb)):
            va, vb = ra.get(key), rb.get(key)
            same = (
                math.isclose(va, vb, rel_tol=rtol, abs_tol=rtol)
                if isinstance(va, float) and isinstance(vb, float)
                else va == vb
            )
            if not same:
                out.append(f"row {i} {key}: {va} vs {vb}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="revision to compare against")
    p.add_argument("--new", default="HEAD", help="revision under test (default HEAD)")
    p.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--out", type=Path, default=Path("/tmp/itero-equivalence"))
    args = p.parse_args()
    failed = 0
    for side, rev in (("base", args.base), ("new", args.new)):
        src = checkout(rev, args.out / f"{side}-src")
        for preset in args.presets:
            run_preset(src, preset, args.out / side, args.iterations)
    for preset in args.presets:
        diff = differences(numbers(args.out / "base" / preset), numbers(args.out / "new" / preset), args.rtol)
        failed += bool(diff)
        print(f"{preset:15s} {'same' if not diff else f'{len(diff)} differences'}")
        for line in diff[:10]:
            print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
