"""The comparison's numbers per side (throughput, seconds per round by stage, accuracy against seconds)
as ``vs_trl.json``, a markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("generate", "score_and_old_logprobs", "train")


def summarise(rounds: list[dict]) -> dict:
    """Throughput and mean seconds per round by stage over a side's finished rounds (zeros if none).
    tokens/s is over generation time only; optimizer steps/s over training time only."""
    n = len(rounds)
    stage = {s: sum(r["stages"][s] for r in rounds) for s in STAGES}
    tokens, steps = sum(r["tokens"] for r in rounds), sum(r["optimizer_steps"] for r in rounds)
    ends = [0.0] + [r["seconds"] for r in rounds]
    return {
        "rounds": n,
        "generated_tokens": tokens,
        "optimizer_steps": steps,
        "tokens_per_second": tokens / stage["generate"] if stage["generate"] else 0.0,
        "optimizer_steps_per_second": steps / stage["train"] if stage["train"] else 0.0,
        "seconds_per_round": (ends[-1] / n) if n else 0.0,
        "round_seconds": [b - a for a, b in zip(ends, ends[1:])],
        "stage_seconds_per_round": {s: (v / n if n else 0.0) for s, v in stage.items()},
    }


def markdown(result: dict) -> str:
    sides = result["sides"]
    lines = [
        f"# itero vs TRL {result['versions']['trl']}: {result['job']} job, {result['mode']}, "
        f"{result['seconds']:.0f} s each",
        "",
        f"load average (1 min) before {result['load']['before'][0]:.2f}, after {result['load']['after'][0]:.2f}; "
        f"torch threads per side: {', '.join(f'{k} {v}' for k, v in result['threads'].items())}",
        "",
        "| side | rounds | tokens/s (generation) | optimizer steps/s (training) | s / round | "
        "generate s | score + old log-probs s | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in sides.items():
        st = s["stage_seconds_per_round"]
        lines.append(
            f"| {name} | {s['rounds']} | {s['tokens_per_second']:.0f} | {s['optimizer_steps_per_second']:.3f} | "
            f"{s['seconds_per_round']:.1f} | {st['generate']:.1f} | {st['score_and_old_logprobs']:.1f} | "
            f"{st['train']:.1f} |"
        )
    acc = result["accuracy"]
    lines += [
        "",
        f"Greedy accuracy on {len(acc['problems'])} fresh problems (start {acc['start']['accuracy']:.1%}):",
        "",
        "| side | round | seconds | accuracy | − start | 95 % interval |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in sides:
        for r in acc.get(name, []):
            half = 1.96 * r["standard_error"]
            lines.append(
                f"| {name} | {r['round']} | {r['seconds']:.0f} | {r['accuracy']:.1%} | {r['difference'] * 100:+.1f} | "
                f"[{(r['difference'] - half) * 100:+.1f}, {(r['difference'] + half) * 100:+.1f}] |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    acc = result["accuracy"]
    names = list(result["sides"])
    for name in names:
        rows = acc.get(name, [])
        xs = [0.0] + [r["seconds"] for r in rows]
        ys = [acc["start"]["accuracy"]] + [r["accuracy"] for r in rows]
        left.plot(xs, [100 * y for y in ys], marker="o", label=name)
    left.set(xlabel="training seconds", ylabel="greedy accuracy (%)", title=f"{len(acc['problems'])} fresh problems")
    left.legend()
    bottom = [0.0] * len(names)
    for stage in STAGES:
        heights = [result["sides"][n]["stage_seconds_per_round"][stage] for n in names]
        right.bar(names, heights, bottom=bottom, label=stage)
        bottom = [b + h for b, h in zip(bottom, heights)]
    right.set(ylabel="seconds per round", title="a round by stage")
    right.legend()
    fig.suptitle(f"itero vs TRL: {result['job']}, {result['mode']}, {result['seconds']:.0f} s each")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: dict, out: Path) -> dict[str, Path]:
    paths = {"json": out / "vs_trl.json", "md": out / "vs_trl.md", "png": out / "vs_trl.png"}
    paths["json"].write_text(json.dumps(result, indent=1))
    paths["md"].write_text(markdown(result))
    plot(result, paths["png"])
    return paths
