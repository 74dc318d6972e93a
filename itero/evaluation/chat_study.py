"""The chat-alignment study on the chat-rule task (itero/tasks/chat_rule.py): data and reward models,
every preset of configs/chat/ from one SFT start, judged against the SFT model by a gold reward model.

    python -m itero.evaluation.chat_study prepare DATA [--proxy-pairs 200] [--noise 0.2] ...
    python -m itero.evaluation.chat_study run DATA OUT [--presets dpo,ppo,...] [--seeds 0,1] [--set KEY=VALUE ...]
    python -m itero.evaluation.chat_study report OUT

``prepare`` writes DATA/train.jsonl (prompts, gold answers, verbose SFT solutions), DATA/eval.jsonl
(prompts, a padded reference), rule-labelled pairs (gold_pairs.jsonl; proxy_pairs.jsonl, few and
with a fraction ``--noise`` of labels flipped; heldout_pairs.jsonl, clean) and trains DATA/gold_rm and
DATA/proxy_rm with ``itero train-rm``. ``run`` trains the SFT start once (OUT/sft-start), copies its
``sft/`` and ``base/`` into every run OUT/<preset>-s<seed> before training it, evaluates every
iteration's checkpoint with ``itero eval-chat`` and writes the report (chat_study_report.py).
Everything is seeded: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

from itero.tasks import chat_rule

PRESETS_DIR = Path(__file__).resolve().parents[2] / "configs" / "chat"
DPO_FAMILY = ("dpo", "rdpo", "simpo", "tdpo")
SAMPLERS = ("samplers-online", "samplers-ref", "samplers-gshf", "samplers-mixp")
ALL_PRESETS = (*DPO_FAMILY, "ppo", "rto", *SAMPLERS)  # rto after dpo: its DPO model is the DPO run's
CLI = "import sys; from itero.cli import main; sys.exit(main())"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def train_rm(pairs: Path, out: Path, args, epochs: int) -> None:
    from itero.rewards import cli as rm_cli

    argv = [str(pairs), "--base", "tiny", "--out", str(out), "--epochs", str(epochs), "--lr", str(args.rm_lr)]
    argv += ["--batch-size", "16", "--val-fraction", "0.1", "--seed", str(args.seed), "--force"]
    argv += ["--tiny-hidden", str(args.rm_hidden), "--tiny-layers", str(args.rm_layers)]
    if rm_cli.main(argv) != 0:
        raise SystemExit(f"train-rm failed on {pairs}")


def heldout_accuracy(rm_path: Path, rows: list[dict]) -> float:
    """The share of clean rule-labelled pairs the reward model orders as the rule does (ties count half)."""
    from itero.rewards import RewardModel

    rm = RewardModel.from_pretrained(rm_path)
    prompts = [r["prompt"] for r in rows]
    chosen = rm.raw_scores(prompts, [r["chosen"] for r in rows])
    rejected = rm.raw_scores(prompts, [r["rejected"] for r in rows])
    return float(((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean())


def kind_pairs(count: int, seed: int) -> dict[str, list[dict]]:
    """Clean pairs that isolate one half of the rule: correctness at equal form, or length among correct answers."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {
        "correct_vs_wrong_concise": [],
        "correct_vs_wrong_padded": [],
        "concise_vs_padded": [],
    }
    for _ in range(count):
        a, b, form = chat_rule.draw_problem(rng)
        text, fillers = chat_rule.prompt(a, b, form), rng.sample(chat_rule.FILLERS, 1)
        wrong = rng.choice([s for s in range(2 * chat_rule.HIGH - 1) if s != a + b])
        for kind, chosen, rejected in (
            ("correct_vs_wrong_concise", chat_rule.concise(a + b), chat_rule.concise(wrong)),
            ("correct_vs_wrong_padded", chat_rule.padded(a, b, a + b, fillers), chat_rule.padded(a, b, wrong, fillers)),
            ("concise_vs_padded", chat_rule.concise(a + b), chat_rule.padded(a, b, a + b, fillers)),
        ):
            out[kind].append({"prompt": text, "chosen": chosen, "rejected": rejected})
    return out


def prepare(args) -> dict:
    data, seed = args.data, args.seed
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", chat_rule.training_rows(args.train, seed))
    write_jsonl(data / "eval.jsonl", chat_rule.evaluation_rows(args.eval, seed + 1))
    write_jsonl(data / "gold_pairs.jsonl", chat_rule.preference_rows(args.gold_pairs, seed + 2))
    proxy = chat_rule.preference_rows(args.proxy_pairs, seed + 3, noise=args.noise)
    write_jsonl(data / "proxy_pairs.jsonl", proxy)
    heldout = chat_rule.preference_rows(args.heldout_pairs, seed + 4)
    write_jsonl(data / "heldout_pairs.jsonl", heldout)
    train_rm(data / "gold_pairs.jsonl", data / "gold_rm", args, args.gold_epochs)
    train_rm(data / "proxy_pairs.jsonl", data / "proxy_rm", args, args.proxy_epochs)
    summary = {
        "proxy_noise_requested": args.noise,
        "proxy_noise_realised": sum(r["flipped"] for r in proxy) / len(proxy),
        "gold_heldout_accuracy": heldout_accuracy(data / "gold_rm", heldout),
        "proxy_heldout_accuracy": heldout_accuracy(data / "proxy_rm", heldout),
        "by_kind": by_kind(data, args.heldout_pairs // 2, seed + 5),
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
    }
    (data / "prepare.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "args"}))
    return summary


def by_kind(data: Path, count: int, seed: int) -> dict:
    """Each reward model's accuracy on pairs that differ in correctness only, or in length only."""
    pairs = kind_pairs(count, seed)
    return {rm: {k: heldout_accuracy(data / rm, rows) for k, rows in pairs.items()} for rm in ("gold_rm", "proxy_rm")}


def train(out: Path, preset: str, name: str, overrides: list[str]) -> Path:
    """One ``itero train`` of a preset in its own process (a fresh interpreter per run)."""
    config = PRESETS_DIR / f"{preset}.yaml"
    argv = [sys.executable, "-c", CLI, "train", str(config), *overrides]
    argv += [f"logging.run_dir={out}", f"logging.name={name}", "logging.progress=false"]
    subprocess.run(argv, check=True)
    return out / name


def start_from_sft(out: Path, run: Path) -> None:
    """The run starts from the study's SFT checkpoint and base model (a finished sft/checkpoint is not redone)."""
    for folder in ("sft", "base"):
        if not (run / folder).exists():
            shutil.copytree(out / "sft-start" / folder, run / folder)


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = [(int(d.name.split("_")[1]), d / "checkpoint") for d in run.glob("iter_*") if (d / "checkpoint").exists()]
    return sorted(found)


def eval_chat(policy: Path, prompts: Path, reference_field: str, data: Path, out: Path, args, base=None) -> dict:
    """``itero eval-chat`` judged by the gold RM, with the gold reward and (given a base) the KL to it."""
    from itero.cli import main

    if not (out / "chat_eval.json").exists():
        argv = ["eval-chat", "--policy", str(policy), "--prompts", str(prompts), "--reference-field", reference_field]
        argv += ["--judge", f"rm:{data / 'gold_rm'}", "--reward-model", str(data / "gold_rm")]
        argv += ["--max-new-tokens", str(args.max_new_tokens), "--threads", "1", "--no-progress", "--out", str(out)]
        argv += ["--base", str(base), "--n", str(args.kl_samples), "--temperature", "1.0"] if base else []
        if main(argv) != 0:
            raise SystemExit(f"eval-chat failed on {policy}")
    return json.loads((out / "chat_eval.json").read_text())


def sft_reference(out: Path, data: Path, args) -> Path:
    """The SFT model's responses (sampled as every policy's) become the reference field ``sft_response``."""
    sft = out / "sft-start" / "sft" / "checkpoint"
    eval_chat(sft, data / "eval.jsonl", "reference", data, out / "sft-start" / "chat" / "vs_dataset", args, base=sft)
    rows = [json.loads(line) for line in (data / "eval.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (out / "sft-start/chat/vs_dataset/chat_eval.jsonl").read_text().splitlines()]
    first = {p["prompt_index"]: p["policy"] for p in pairs if p["sample"] == 0}
    return write_jsonl(out / "eval_sft.jsonl", [{**r, "sft_response": first[i]} for i, r in enumerate(rows)])


def run_study(args) -> None:
    out, data = args.out.resolve(), args.data.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = [f"task.jsonl.train_path={data / 'train.jsonl'}", f"reward.model_path={data / 'proxy_rm'}", *args.set]
    if not (out / "sft-start" / "sft" / "checkpoint").exists():
        train(out, args.presets[0], "sft-start", [*common, "loop.iterations=0"])
    prompts = sft_reference(out, data, args)
    sft = out / "sft-start" / "sft" / "checkpoint"
    eval_chat(sft, prompts, "sft_response", data, out / "sft-start" / "chat" / "iter_0", args, base=sft)
    for seed in args.seeds:
        for preset in args.presets:
            name, run = f"{preset}-s{seed}", out / f"{preset}-s{seed}"
            overrides = [*common, f"loop.seed={seed}"]
            dpo_run = out / f"dpo-s{seed}"
            if preset == "rto" and checkpoints(dpo_run):  # RTO's DPO model: the DPO run's last checkpoint
                overrides += ["algorithm.dpo_iterations=0", f"algorithm.dpo_model_path={checkpoints(dpo_run)[-1][1]}"]
            run.mkdir(parents=True, exist_ok=True)
            start_from_sft(out, run)
            train(out, preset, name, overrides)
            for k, checkpoint in checkpoints(run):
                eval_chat(checkpoint, prompts, "sft_response", data, run / "chat" / f"iter_{k}", args, base=sft)
    from itero.evaluation.chat_study_report import write_report

    write_report(out, data)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the task's data and train the gold and proxy reward models")
    prep.add_argument("data", type=Path)
    for flag, default in (("train", 2000), ("eval", 100), ("gold-pairs", 2000), ("proxy-pairs", 200)):
        prep.add_argument(f"--{flag}", type=int, default=default)
    prep.add_argument("--heldout-pairs", type=int, default=400)
    prep.add_argument("--noise", type=float, default=0.2, help="share of the proxy's labels flipped")
    prep.add_argument("--gold-epochs", type=int, default=5)
    prep.add_argument("--proxy-epochs", type=int, default=10)
    prep.add_argument("--rm-hidden", type=int, default=64)
    prep.add_argument("--rm-layers", type=int, default=2)
    prep.add_argument("--rm-lr", type=float, default=3e-3)
    prep.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("run", help="SFT start, every preset, eval-chat on every checkpoint, the report")
    run.add_argument("data", type=Path)
    run.add_argument("out", type=Path)
    run.add_argument("--presets", type=lambda s: s.split(","), default=list(ALL_PRESETS))
    run.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    run.add_argument("--set", action="append", default=[], help="a config override for every run (KEY=VALUE)")
    run.add_argument("--max-new-tokens", type=int, default=48)
    run.add_argument("--kl-samples", type=int, default=2, help="responses per prompt, at temperature 1")
    report = sub.add_parser("report", help="the table and the reward-against-KL plot of a finished OUT")
    report.add_argument("out", type=Path)
    report.add_argument("--data", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "prepare":
        prepare(args)
    elif args.command == "run":
        run_study(args)
    else:
        from itero.evaluation.chat_study_report import write_report

        write_report(args.out, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
