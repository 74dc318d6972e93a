"""A chat task with a known answer, for trying ``itero eval-chat`` on CPU.

Prompts ``"User: a+b?\\nAssistant:"`` over digits below ``high``, the reference response
``" \\boxed{a+b}"``, and preference pairs whose chosen response is the right sum and whose rejected one
a wrong sum: the "gold" preference is the rule "the right sum wins". A reward model trained on the
pairs (``itero train-rm``) then judges: it should prefer the reference to any policy that does not
add, so the win rate of an untrained policy is near 0 and that of a policy that adds near 0.5 (ties).

    python -m itero.evaluation.chat_toy DIR [--prompts 200] [--pairs 400] [--seed 0]

writes DIR/prompts.jsonl (prompt, reference, gold_answer) and DIR/prefs.jsonl (prompt, chosen, rejected).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def prompt(a: int, b: int) -> str:
    return f"User: {a}+{b}?\nAssistant:"


def answer(total: int) -> str:
    return f" \\boxed{{{total}}}"


def prompt_rows(count: int, seed: int = 0, high: int = 5) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randrange(high), rng.randrange(high)
        rows.append({"prompt": prompt(a, b), "reference": answer(a + b), "gold_answer": str(a + b)})
    return rows


def preference_rows(count: int, seed: int = 1, high: int = 5) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randrange(high), rng.randrange(high)
        wrong = rng.choice([s for s in range(2 * high - 1) if s != a + b])
        rows.append({"prompt": prompt(a, b), "chosen": answer(a + b), "rejected": answer(wrong)})
    return rows


def write_task(folder: Path, prompts: int = 200, pairs: int = 400, seed: int = 0) -> tuple[Path, Path]:
    """DIR/prompts.jsonl and DIR/prefs.jsonl; different seeds for the two so the RM is judged on fresh draws."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rows in (
        ("prompts.jsonl", prompt_rows(prompts, seed)),
        ("prefs.jsonl", preference_rows(pairs, seed + 1)),
    ):
        path = folder / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        out.append(path)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_task(args.folder, args.prompts, args.pairs, args.seed):
        print(path)


if __name__ == "__main__":
    main()
