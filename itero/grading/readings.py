"""Alternative readings of one answer string, tried in turn (the answer matches if any reading does).

* percent: "10\\%" reads as 10 and as 1/10 (either side may be the percent);
* an approximation tail is not the answer: "\\frac{\\sqrt3}{3} \\approx 0.577" reads as the exact part,
  and "x \\approx 11" (a bare name before it) as 11;
* a gold written as \\boxed{42} reads as 42.
"""

from __future__ import annotations

import re

from .structure import split_top

_PERCENT_RE = re.compile(
    r"^(.*?[\d}])\s*(?:\\%|%|\\percent(?![A-Za-z])|\\text\{\s*%\s*\}|pct|percentage|percent)\.?\s*$", re.S
)
_NAME_RE = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=?\s*$")
MAX_READINGS = 4


def readings(answer: str) -> tuple[str, ...]:
    out = [answer]
    approx = split_top(answer, "\\approx")
    if len(approx) > 1:
        exact = approx[0].strip()
        out = [approx[-1].strip()] if _NAME_RE.match(exact) else [exact]
    percent = _PERCENT_RE.match(out[0])
    if percent:
        out.append(f"\\frac{{{percent.group(1)}}}{{100}}")
    return tuple(dict.fromkeys(item for item in out if item))[:MAX_READINGS]


def unwrap_gold(gold: str) -> str:
    """A gold written as \\boxed{...} is the box's content."""
    from .extract import last_boxed

    if "\\boxed" not in gold and "\\fbox" not in gold:
        return gold
    boxed = last_boxed(gold)
    return boxed[0].strip() if isinstance(boxed, tuple) and boxed[0].strip() else gold
