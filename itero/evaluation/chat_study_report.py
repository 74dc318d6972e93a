"""The chat study's table and reward-against-KL plot, from the eval-chat results under OUT.

Per run (OUT/<preset>-s<seed>/chat/iter_K/chat_eval.json, K the last iteration): the gold-RM win rate
and length-controlled win rate against the SFT model, the gold RM's mean reward, the KL to the SFT
model, and from the per-response rows the rule's own verdicts (itero/tasks/chat_rule.py): the share of
correct responses, their mean length, the rule's win rate against the SFT responses, and the proxy
RM's mean reward (what the runs optimised). A preset's row is the mean over its seeds ± the standard
error of that mean over seeds (table.json also keeps each seed's value and the spread).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from itero.tasks import chat_rule

COLUMNS = (
    ("win_rate", "WR (gold RM)"),
    ("lc_win_rate", "LC-WR"),
    ("mean_reward", "gold reward"),
    ("proxy_reward", "proxy reward"),
    ("kl", "KL (nats)"),
    ("rule_win_rate", "WR (rule)"),
    ("rule_score", "rule score"),
    ("correct", "correct"),
    ("length", "length (chars)"),
)


def rule_numbers(rows: list[dict]) -> dict:
    """The rule's verdicts on eval-chat's per-response rows."""
    n = len(rows)
    return {
        "rule_win_rate": sum(chat_rule.rule_preference(r["prompt"], r["policy"], r["reference"]) for r in rows) / n,
        "rule_score": sum(chat_rule.gold_score(r["prompt"], r["policy"]) for r in rows) / n,
        "correct": sum(chat_rule.is_correct(r["prompt"], r["policy"]) for r in rows) / n,
        "length": sum(r["policy_length"] for r in rows) / n,
    }


def proxy_reward(rows: list[dict], proxy) -> float:
    return float(proxy.raw_scores([r["prompt"] for r in rows], [r["policy"] for r in rows]).mean())


def point(result_dir: Path, proxy) -> dict:
    """One evaluated checkpoint: eval-chat's numbers plus the rule's and the proxy's."""
    report = json.loads((result_dir / "chat_eval.json").read_text())
    rows = [json.loads(line) for line in (result_dir / "chat_eval.jsonl").read_text().splitlines()]
    kl = report.get("kl") or {}
    out = {k: report[k] for k in ("win_rate", "win_rate_stderr", "lc_win_rate", "lc_win_rate_stderr")}
    out.update(mean_reward=report["mean_reward"], mean_reward_stderr=report["mean_reward_stderr"])
    out.update(kl=kl.get("mean", 0.0), kl_stderr=kl.get("stderr", 0.0), **rule_numbers(rows))
    out["proxy_reward"] = proxy_reward(rows, proxy) if proxy is not None else math.nan
    return out


def collect(out: Path, proxy) -> dict[str, dict[int, list[dict]]]:
    """{preset: {seed: [point of iteration 0 (the SFT start), 1, ...]}}."""
    start = point(out / "sft-start" / "chat" / "iter_0", proxy)
    runs: dict[str, dict[int, list[dict]]] = {"sft": {0: [start]}}
    for run in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "sft-start" and (p / "chat").is_dir()):
        preset, _, seed = run.name.rpartition("-s")
        iters = sorted((int(d.name.split("_")[1]), d) for d in (run / "chat").glob("iter_*"))
        points = [start] + [point(d, proxy) for _, d in iters if (d / "chat_eval.json").exists()]
        if len(points) > 1:
            runs.setdefault(preset, {})[int(seed)] = points
    return runs


def seed_stderr(values: list[float]) -> float:
    """The standard error of the mean over seeds: sample sd (n − 1) / √n."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def nan_to_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def table(runs: dict[str, dict[int, list[dict]]]) -> list[dict]:
    """One row per preset: the last point of each seed, mean and spread over seeds."""
    rows = []
    for preset, seeds in runs.items():
        last = [points[-1] for _, points in sorted(seeds.items())]
        row = {"preset": preset, "seeds": len(last), "iterations": len(next(iter(seeds.values()))) - 1}
        for key, _ in COLUMNS:
            values = [p[key] for p in last]
            row[key] = sum(values) / len(values)
            row[f"{key}_spread"] = max(values) - min(values)
            row[f"{key}_se"] = seed_stderr(values)
            row[f"{key}_values"] = values
        row["win_rate_stderr"] = sum(p["win_rate_stderr"] for p in last) / len(last)
        row["lc_win_rate_stderr"] = sum(p["lc_win_rate_stderr"] for p in last) / len(last)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| preset | seeds | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            digits = 1 if key == "length" else 3
            cell = f"{row[key]:.{digits}f}"
            if row["seeds"] > 1:
                cell += f" ± {row[f'{key}_se']:.{digits}f}"
            cells.append(cell)
        lines.append(f"| {row['preset']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[int, list[dict]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = plt.get_cmap("tab10")
    presets = [p for p in runs if p != "sft"]
    for ax, key, label in zip(axes, ("mean_reward", "rule_score"), ("gold reward (gold RM)", "rule score (exact)")):
        for i, preset in enumerate(presets):
            curves = [points for _, points in sorted(runs[preset].items())]
            steps = range(min(len(c) for c in curves))  # iteration 0 (the SFT start), 1, ...
            kl = [[c[k]["kl"] for c in curves] for k in steps]
            y = [[c[k][key] for c in curves] for k in steps]
            ax.errorbar(
                [sum(v) / len(v) for v in kl],
                [sum(v) / len(v) for v in y],
                xerr=[nan_to_zero(seed_stderr(v)) for v in kl],
                yerr=[nan_to_zero(seed_stderr(v)) for v in y],
                marker="o",
                markersize=3,
                linewidth=1,
                capsize=2,
                color=colours(i % 10),
                label=preset,
            )
        ax.set_xlabel("KL(policy ‖ SFT), nats per response")
        ax.set_ylabel(f"{label}, mean over seeds")
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, data: Path, with_plot: bool = True) -> list[dict]:
    """OUT/table.md, OUT/table.json and OUT/reward_kl.png."""
    from itero.rewards import RewardModel

    proxy = RewardModel.from_pretrained(data / "proxy_rm") if (data / "proxy_rm").exists() else None
    runs = collect(out, proxy)
    rows = table(runs)
    (out / "table.md").write_text(markdown(rows))
    (out / "table.json").write_text(json.dumps({"rows": rows, "runs": runs}, indent=1))
    if with_plot:
        plot(runs, out / "reward_kl.png")
    print(markdown(rows))
    return rows
