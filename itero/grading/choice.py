"""Multiple choice: decided only when the whole answer is a choice.

A choice is a letter A-E alone, "(C)", "C." / "C:" / "C)" / "(C)" followed by the option's text.
A letter inside an expression (``B+1``, ``C^2``, ``2A``, ``E'``, ``E = mc^2``) or a sentence
(``not C``, ``None of A``, ``A is wrong``) is not a choice, so it never matches a letter gold.
"""

from __future__ import annotations

import re

_CHOICE_RE = re.compile(r"^\(?([A-E])\)?(?:\s*[.:)]\s*(.*)|(?<=\))\s+(.*))?$", re.S)
_OPTION_PREFIX_RE = re.compile(r"^(?:option|choice|answer)\s+", re.IGNORECASE)


def parse_choice(normalized: str):
    """(letter, option text or None) when the whole answer is a choice, else None."""
    text = _OPTION_PREFIX_RE.sub("", normalized.strip())
    match = _CHOICE_RE.match(text)
    if match is None:
        return None
    option = match.group(2) or match.group(3)
    return match.group(1), (option.strip() or None) if option else None
