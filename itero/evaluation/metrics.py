"""Sample-based accuracy estimators (pass@k, maj@k) and the per-benchmark results table."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): 1 − C(n−c, k) / C(n, k), for n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_index(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> int | None:
    """Index of the answer that wins a majority vote, or None when no sample gave an answer.

    Answers are grouped with ``same`` (the grader's equivalence, so "0.5", "\\frac{1}{2}" and "1/2"
    are one vote); the largest group wins, a tie goes to the group whose first answer came first.
    The winner is that group's first answer. Missing answers (None) do not vote.
    """
    groups: list[list[int]] = []  # indices of equivalent answers, groups in order of first appearance
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            first = answers[group[0]]
            if answer == first or same(answer, first):
                group.append(index)
                break
        else:
            groups.append([index])
    return max(groups, key=len)[0] if groups else None


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], same: Callable[[str, str], bool]) -> float:
    """1.0 when the majority-vote answer of the k samples is correct (judged by its own verdict), else 0.0."""
    if len(answers) != len(correct) or not answers:
        raise ValueError(
            f"maj@k needs one verdict per answer, k >= 1; got {len(answers)} answers, {len(correct)} verdicts"
        )
    winner = majority_index(answers, same)
    return float(winner is not None and correct[winner])


def pass_ks(n: int) -> list[int]:
    """The k reported for n samples: the powers of two below n, and n itself."""
    ks, k = ({n} if n > 0 else set()), 1
    while k < n:
        ks.add(k)
        k *= 2
    return sorted(ks)


def benchmark_metrics(rows: Sequence[dict], same: Callable[[str, str], bool]) -> dict[str, float]:
    """Metrics of one benchmark from its graded responses (the rows of ``eval/<benchmark>.jsonl``).

    Each row has problem_index, mode ("greedy" | "sampled"), extracted, correct, length, truncated.
    Greedy: accuracy, mean response length (tokens), truncation rate. n samples per problem:
    mean accuracy@n (= pass@1), unbiased pass@k for the ``pass_ks(n)``, maj@n, length and truncation.
    """
    out: dict[str, float] = {}
    greedy = [r for r in rows if r["mode"] == "greedy"]
    sampled = [r for r in rows if r["mode"] == "sampled"]
    problems = sorted({r["problem_index"] for r in rows})
    out["num_problems"] = len(problems)
    if greedy:
        out["greedy_accuracy"] = _mean(r["correct"] for r in greedy)
        out["greedy_response_length"] = _mean(r["length"] for r in greedy)
        out["greedy_truncation_rate"] = _mean(r["truncated"] for r in greedy)
    if sampled:
        by_problem: dict[int, list[dict]] = {}
        for r in sampled:
            by_problem.setdefault(r["problem_index"], []).append(r)
        counts = {len(v) for v in by_problem.values()}
        if len(counts) != 1 or len(by_problem) != len(problems):
            raise ValueError(
                f"every problem needs the same number of samples; got {sorted(counts)} samples "
                f"for {len(by_problem)} of {len(problems)} problems"
            )
        n = counts.pop()
        out[f"mean_accuracy@{n}"] = _mean(r["correct"] for r in sampled)
        for k in pass_ks(n):
            out[f"pass@{k}"] = _mean(pass_at_k(n, sum(r["correct"] for r in v), k) for v in by_problem.values())
        out[f"maj@{n}"] = _mean(
            maj_at_k([r["extracted"] for r in v], [r["correct"] for r in v], same) for v in by_problem.values()
        )
        out["sampled_response_length"] = _mean(r["length"] for r in sampled)
        out["sampled_truncation_rate"] = _mean(r["truncated"] for r in sampled)
    return out


def average_metrics(per_benchmark: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over benchmarks of each metric all of them have (the sources' "Avg." column)."""
    keys = [k for k in _keys(per_benchmark) if k != "num_problems" and all(k in m for m in per_benchmark.values())]
    return {k: _mean(m[k] for m in per_benchmark.values()) for k in keys}


def results_table(per_benchmark: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per metric, one column per benchmark and the Average, like the sources' tables."""
    average = average_metrics(per_benchmark)
    columns = [*per_benchmark.items(), ("Average", average)]
    lines = ["| metric | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for key in _keys(per_benchmark):
        lines.append(f"| {key} | " + " | ".join(_cell(key, m.get(key)) for _, m in columns) + " |")
    lines.append("\nAccuracies and rates in %, lengths in tokens; Average is the unweighted mean over benchmarks.")
    return "\n".join(lines)


def flat_metrics(per_benchmark: dict[str, dict[str, float]], prefix: str = "bench") -> dict[str, float]:
    """``{prefix}/<benchmark>/<metric>`` and ``{prefix}/average/<metric>``, for metrics.jsonl and trackers."""
    out = {f"{prefix}/{name}/{k}": v for name, m in per_benchmark.items() for k, v in m.items()}
    out.update({f"{prefix}/average/{k}": v for k, v in average_metrics(per_benchmark).items()})
    return out


def _keys(per_benchmark: dict[str, dict[str, float]]) -> list[str]:
    return list(dict.fromkeys(k for m in per_benchmark.values() for k in m))


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return ""
    if key == "num_problems":
        return str(int(value))
    if key.endswith("length"):
        return f"{value:.1f}"
    return f"{100 * value:.1f}"  # accuracies and rates in percent, as the sources print them


def _mean(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values)
