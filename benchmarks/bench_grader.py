"""itero.grading vs Math-Verify, side by side in one run on the same cases.

    .venv/bin/pip install math-verify        # benchmark only; itero never imports it
    .venv/bin/python benchmarks/bench_grader.py [--data-dir DIR] [--shifts 3]

Prints, for the hand-written case file (tests/grading/grading_cases.py) and for the real-data
check (reference solutions vs own gold, and vs other problems' golds): cases per second of each
grader in a single process, the ratio, each grader's agreement with the expected verdicts, the
cases where Math-Verify differs from the expected verdict, then grade_batch scaling with 1 and 2
workers. Adversarial cases are timed separately (Math-Verify may hang on them; it runs them in a
child process with a watchdog).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "grading"))

from grading_cases import CASES, MATH_VERIFY_DIFFERS  # noqa: E402

from itero.grading import grade, grade_batch, warm_up  # noqa: E402
from itero.grading.check import DATASETS, default_data_dir, load_rows, negative_pairs  # noqa: E402
from itero.grading.equivalence import analyse, canonical  # noqa: E402


def math_verify_grade(response: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(response)))
    except Exception:  # Math-Verify raises on some inputs; count as not equal
        return False


def timed(fn, pairs):
    start = time.perf_counter()
    verdicts = [fn(response, gold) for response, gold in pairs]
    return verdicts, time.perf_counter() - start


def ours(response: str, gold: str) -> bool:
    return grade(response, gold).correct


def compare(title: str, pairs, expected) -> None:
    mv_verdicts, mv_seconds = timed(math_verify_grade, pairs)
    analyse.cache_clear()  # no head start from answers parsed earlier in this run
    canonical.cache_clear()
    our_verdicts, our_seconds = timed(ours, pairs)
    n = len(pairs)
    print(f"\n== {title}: {n} cases")
    print(
        f"  itero.grading : {n / our_seconds:9.0f} cases/s  ({our_seconds:6.2f} s)  "
        f"agrees with expected {sum(a == e for a, e in zip(our_verdicts, expected))}/{n}"
    )
    print(
        f"  Math-Verify   : {n / mv_seconds:9.0f} cases/s  ({mv_seconds:6.2f} s)  "
        f"agrees with expected {sum(a == e for a, e in zip(mv_verdicts, expected))}/{n}"
    )
    print(f"  throughput ratio (itero / Math-Verify): {mv_seconds / our_seconds:.1f}x")
    return mv_verdicts


def _mv_worker(queue_in, queue_out):
    for response, gold in iter(queue_in.get, None):
        start = time.perf_counter()
        verdict = math_verify_grade(response, gold)
        queue_out.put((verdict, time.perf_counter() - start))


def adversarial_report(indices) -> None:
    print(f"\n== adversarial cases ({len(indices)}), seconds per case (Math-Verify in a child, 20 s watchdog)")
    context = multiprocessing.get_context("spawn")
    queue_in, queue_out, process = None, None, None
    for index in indices:
        category, response, gold, expected = CASES[index]
        start = time.perf_counter()
        verdict = grade(response, gold)
        our_seconds = time.perf_counter() - start
        if process is None or not process.is_alive():
            queue_in, queue_out = context.Queue(), context.Queue()
            process = context.Process(target=_mv_worker, args=(queue_in, queue_out), daemon=True)
            process.start()
        queue_in.put((response, gold))
        try:
            mv_verdict, mv_seconds = queue_out.get(timeout=20)
            mv_text = f"{mv_seconds:7.3f}s {'ok ' if mv_verdict == expected else 'BAD'}"
        except Exception:
            process.kill()
            process = None
            mv_text = " >20 s (killed)"
        print(
            f"  [{index:3d}] itero {our_seconds:6.3f}s {'ok ' if verdict.correct == expected else 'BAD'}"
            f" | Math-Verify {mv_text} | {gold[:30]!r}"
        )
    if process is not None:
        queue_in.put(None)


def real_data_pairs(data_dir: Path, shifts):
    pairs, expected = [], []
    for _name, (relative, response_field, gold_field, _) in DATASETS.items():
        rows = load_rows(data_dir / relative)
        for row in rows:
            pairs.append((row[response_field], str(row[gold_field])))
            expected.append(True)
        negatives, _ = negative_pairs(rows, response_field, gold_field, shifts)
        for i, j in negatives:
            pairs.append((rows[i][response_field], str(rows[j][gold_field])))
            expected.append(False)
    return pairs, expected


def scaling(title: str, pairs) -> None:
    print(f"\n== grade_batch scaling: {title} ({len(pairs)} pairs)")
    base = None
    for workers in (1, 2):
        warm_up(workers)
        start = time.perf_counter()
        grade_batch(pairs, workers=workers)
        seconds = time.perf_counter() - start
        base = base or seconds
        print(
            f"  workers={workers}: {len(pairs) / seconds:8.0f} pairs/s ({seconds:6.2f} s)  speed-up {base / seconds:.2f}x"
        )


def math_verify_peer(response: str, gold: str) -> bool:
    """Math-Verify as the peer file records it: the gold wrapped in $...$ unless it has $ or \\boxed."""
    from math_verify import parse, verify

    wrapped = gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"
    try:
        return bool(verify(parse(wrapped), parse(response)))
    except Exception:
        return False


def peer_report(data_dir: Path) -> None:
    path = data_dir / "grader" / "peer_cases.jsonl"
    if not path.is_file():
        print(f"\n== peer conformance suite: {path} not found")
        return
    rows = load_rows(path)
    pairs = [(row["response"], row["gold"]) for row in rows]
    mv_verdicts, mv_seconds = timed(math_verify_peer, pairs)
    analyse.cache_clear()
    canonical.cache_clear()
    our_verdicts, our_seconds = timed(lambda r, g: grade(r, g, mode="lenient").correct, pairs)
    print(f"\n== peer conformance suite: {len(rows)} cases ({sum(r['disputed'] for r in rows)} disputed)")
    for name, verdicts, seconds in (
        ("itero.grading", our_verdicts, our_seconds),
        ("Math-Verify", mv_verdicts, mv_seconds),
    ):
        right = sum(v == row["expected"] for v, row in zip(verdicts, rows))
        undisputed = sum(v == row["expected"] for v, row in zip(verdicts, rows) if not row["disputed"])
        false_pos = sum(v and not row["expected"] and not row["disputed"] for v, row in zip(verdicts, rows))
        print(
            f"  {name:<14}: {len(rows) / seconds:9.0f} cases/s  ({seconds:6.2f} s)  right {right}/{len(rows)}, "
            f"undisputed {undisputed}/{sum(not r['disputed'] for r in rows)}, false positives {false_pos}"
        )
    print(f"  throughput ratio (itero / Math-Verify): {mv_seconds / our_seconds:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--shifts", type=int, default=3, help="mismatched pairs per problem")
    parser.add_argument("--peer-only", action="store_true", help="only the peer conformance suite")
    args = parser.parse_args()

    warm_up(2)
    math_verify_grade("$\\boxed{1}$", "1")  # load Math-Verify's parser before timing
    peer_report(args.data_dir)
    if args.peer_only:
        return

    regular = [i for i, case in enumerate(CASES) if case[0] != "adversarial"]
    adversarial = [i for i, case in enumerate(CASES) if case[0] == "adversarial"]
    pairs = [(CASES[i][1], CASES[i][2]) for i in regular]
    expected = [CASES[i][3] for i in regular]
    mv_verdicts = compare("case file (non-adversarial)", pairs, expected)
    print("  cases where Math-Verify differs from the expected verdict:")
    for index, mv, exp in zip(regular, mv_verdicts, expected):
        if mv != exp:
            note = MATH_VERIFY_DIFFERS.get(index, "(no note)")
            print(f"    [{index:3d}] {CASES[index][0]:<10} expected {exp!s:5} gold {CASES[index][2][:40]!r}: {note}")

    data_pairs, data_expected = real_data_pairs(args.data_dir, tuple(range(1, args.shifts + 1)))
    compare("real-data check (MATH500 + GSM8K + Minerva, own gold and mismatched golds)", data_pairs, data_expected)

    adversarial_report(adversarial)

    scaling("distinct cases that need sympy", symbolic_pairs(240))
    scaling("real-data check pairs (decided in-process: nothing to parallelise)", data_pairs)


def symbolic_pairs(count: int):
    """Distinct pairs that only sympy can accept (sympy caches results, so repeats would flatter)."""
    pairs = []
    for k in range(1, count // 4 + 1):
        pairs.append((f"\\boxed{{(x+{k})^2}}", f"x^2+{2 * k}x+{k * k}"))
        pairs.append((f"\\boxed{{\\sqrt{{{2 * k * k}}}}}", f"{k}\\sqrt{{2}}"))
        pairs.append((f"\\boxed{{\\frac{{x^2-{k * k}}}{{x-{k}}}}}", f"x+{k}"))
        pairs.append((f"\\boxed{{{k}\\sin^2 x + {k}\\cos^2 x}}", f"{k}"))
    return pairs


if __name__ == "__main__":
    main()
