"""``itero grade --explain``: why a case got its verdict (the answer read, the forms compared, the rule)."""

from __future__ import annotations

from .equivalence import analyse
from .grader import DEFAULT_TIMEOUT, final_answer, grade
from .readings import readings, unwrap_gold


def explain(response: str, gold: str, mode: str = "strict", timeout: float = DEFAULT_TIMEOUT) -> dict:
    """The verdict with its evidence: extracted answer, each reading's normal form and structure, the rule."""
    verdict = grade(response, gold, timeout=timeout, mode=mode)
    extracted = final_answer(response, str(gold), mode)
    return {
        "correct": verdict.correct,
        "extracted": extracted,
        "answer_forms": _forms(readings(extracted)) if extracted is not None else [],
        "gold_forms": _forms(readings(unwrap_gold(str(gold)))),
        "rule": verdict.method,
        "mode": mode,
        "seconds": round(verdict.seconds, 6),
        "timed_out": verdict.timed_out,
    }


def _forms(texts) -> list[dict]:
    return [{"normal": analyse(text).normalized, "structure": _shape(analyse(text).structure)} for text in texts]


def _shape(structure) -> str:
    return "unparsed (too long)" if structure is None else repr(structure)


def format_explanation(index: int, item: dict) -> str:
    lines = [f"[{index}] {'RIGHT' if item['correct'] else 'WRONG'}  rule={item['rule']}  mode={item['mode']}"]
    lines.append(f"    extracted : {item['extracted']!r}")
    for label, forms in (("answer", item["answer_forms"]), ("gold", item["gold_forms"])):
        for form in forms:
            lines.append(f"    {label:<6}    : {form['normal']!r}  ->  {form['structure'][:200]}")
    return "\n".join(lines)
