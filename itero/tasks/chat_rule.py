"""A chat task whose gold preference is a rule: correct and concise beats padded, padded beats wrong.

Instructions ask for a sum of two digits below HIGH in a few phrasings (``"User: Add 3 and 4.\\nAssistant:"``).
A response is *correct* when its last integer is the sum. The gold score is

    gold_score = 2·[correct] − min(len(response), MAX_CHARS) / MAX_CHARS

so any correct response beats any wrong one (2 − 1 > 0), and among correct (or among wrong) responses
the shorter wins: " \\boxed{7}" > " Sure! 3+4=7, so \\boxed{7}" > " \\boxed{8}". Length matters to the
gold judge, so a length-controlled win rate differs from the raw one.

Files (written by ``itero.evaluation.chat_study prepare``):

- training prompts with ``solution`` for the SFT warm-up, deliberately verbose or wrong
  (``SFT_MIX``), so the warm-up model has room to get shorter and more often right;
- evaluation prompts with a padded correct ``reference``;
- rule-labelled preference pairs (``prompt``, ``chosen``, ``rejected``), and a noisy variant whose
  labels are flipped with a given probability (the proxy reward model's data).
"""

from __future__ import annotations

import random
import re

MAX_CHARS = 64  # responses longer than this all score as long as this
HIGH = 5  # operands below HIGH: 25 sums a tiny reward model can learn to check in a minute
INSTRUCTIONS = ("What is {a}+{b}?", "Add {a} and {b}.", "Compute {a}+{b}.", "{a}+{b}?")
FILLERS = ("Sure!", "Good question.", "Let me think.", "Happy to help!", "Okay, let us see.")
# Response kinds and their shares in the pair data: every kind meets every other one.
PAIR_MIX = {"concise": 0.25, "padded": 0.35, "wrong_concise": 0.2, "wrong_padded": 0.2}
# The SFT warm-up's worked solutions: mostly padded, some wrong, few concise.
SFT_MIX = {"concise": 0.15, "padded": 0.7, "wrong_padded": 0.15}

_DIGITS = re.compile(r"\d+")


def prompt(a: int, b: int, form: int = 0) -> str:
    return f"User: {INSTRUCTIONS[form % len(INSTRUCTIONS)].format(a=a, b=b)}\nAssistant:"


def operands(prompt_text: str) -> tuple[int, int]:
    """(a, b) of an instruction: its first two integers."""
    a, b = (int(x) for x in _DIGITS.findall(prompt_text)[:2])
    return a, b


def concise(total: int) -> str:
    return f" \\boxed{{{total}}}"


def padded(a: int, b: int, total: int, fillers: list[str]) -> str:
    return " " + " ".join([*fillers, f"{a}+{b}={total}, so \\boxed{{{total}}}"])


def is_correct(prompt_text: str, response: str) -> bool:
    numbers = _DIGITS.findall(response)
    return bool(numbers) and int(numbers[-1]) == sum(operands(prompt_text))


def gold_score(prompt_text: str, response: str) -> float:
    return 2.0 * is_correct(prompt_text, response) - min(len(response), MAX_CHARS) / MAX_CHARS


def rule_preference(prompt_text: str, first: str, second: str) -> float:
    """1 when the rule prefers ``first``, 0 when it prefers ``second``, 0.5 on a tie."""
    s1, s2 = gold_score(prompt_text, first), gold_score(prompt_text, second)
    return 0.5 if s1 == s2 else float(s1 > s2)


def draw_problem(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(HIGH), rng.randrange(HIGH), rng.randrange(len(INSTRUCTIONS))


def draw_response(rng: random.Random, a: int, b: int, kind: str) -> str:
    """One response of ``kind`` (a key of PAIR_MIX) to a+b, with 1 or 2 fillers when padded."""
    total = a + b
    if kind.startswith("wrong"):
        total = rng.choice([s for s in range(2 * HIGH - 1) if s != a + b])
    if kind.endswith("concise"):
        return concise(total)
    return padded(a, b, total, rng.sample(FILLERS, rng.randint(1, 2)))


def _kind(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def training_rows(count: int, seed: int) -> list[dict]:
    """Prompts with a gold answer and a worked solution drawn from SFT_MIX."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b, form = draw_problem(rng)
        solution = draw_response(rng, a, b, _kind(rng, SFT_MIX))
        rows.append({"prompt": prompt(a, b, form), "gold_answer": str(a + b), "solution": solution})
    return rows


def evaluation_rows(count: int, seed: int) -> list[dict]:
    """Prompts with a padded correct reference (the dataset's response)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b, form = draw_problem(rng)
        reference = padded(a, b, a + b, rng.sample(FILLERS, 1))
        rows.append({"prompt": prompt(a, b, form), "gold_answer": str(a + b), "reference": reference})
    return rows


def preference_rows(count: int, seed: int, noise: float = 0.0) -> list[dict]:
    """``count`` pairs labelled by the rule (no ties); each label is flipped with probability ``noise``.
    A row keeps ``flipped`` so the realised noise rate can be read back."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < count:
        a, b, form = draw_problem(rng)
        text = prompt(a, b, form)
        x, y = (draw_response(rng, a, b, _kind(rng, PAIR_MIX)) for _ in range(2))
        preference = rule_preference(text, x, y)
        if preference == 0.5:
            continue
        chosen, rejected = (x, y) if preference == 1.0 else (y, x)
        flipped = rng.random() < noise
        if flipped:
            chosen, rejected = rejected, chosen
        rows.append({"prompt": text, "chosen": chosen, "rejected": rejected, "flipped": flipped})
    return rows
