"""String normalisation of an extracted answer: strip what never changes the value.

Decorations removed here: $ and \\$, \\left/\\right, spacing commands, thin-space and comma
thousands separators (also Indian grouping written with ``,\\!``), degree signs, percent signs (the
reading p/100 is added by ``readings.py``), trailing units written as \\text{...} holding unit words
or as a known unit word (never other text: "5 \\text{ thousand}" keeps its meaning),
\\text{}/\\mathrm{} wrappers, a leading "x \\in", backslashes doubled by a raw string ("\\\\frac").
Everything here is a linear regex pass, so it is safe on any input length.
"""

from __future__ import annotations

import re

MAX_ANSWER_CHARS = 600

_UNICODE = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u00d7": "\\times ",
    "\u00b7": "\\cdot ",
    "\u22c5": "\\cdot ",
    "\u00f7": "\\div ",
    "\u03c0": "\\pi ",
    "\u221e": "\\infty ",
    "\u221a": "\\sqrt",
    "\u2264": "\\le ",
    "\u2265": "\\ge ",
    "\u2260": "\\ne ",
    "\u00b0": "^\\circ",
    "\u2205": "\\varnothing ",
    "\u222a": "\\cup ",
    "\u2229": "\\cap ",
    "\u00b1": "\\pm ",
    "\u2208": "\\in ",
    "\u27e8": "\\langle ",
    "\u27e9": "\\rangle ",
    "\uff0c": ",",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

_TEXT_COMMANDS = (
    r"text|textbf|textit|textrm|textsf|texttt|textnormal|mbox|mathrm|mathbf|mathit|mathsf|mathtt|mathnormal|"
    r"operatorname|boldsymbol|rm|bf|mathcal|mathscr|mathfrak"
)
_UNIT_WORDS = (
    "cm|mm|km|meters?|metres?|inch|inches|feet|foot|ft|yards?|yd|miles?|mph|kph|degrees?|deg|dollars?|"
    "cents?|units?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|grams?|kg|"
    "pounds?|lbs?|ounces?|oz|liters?|litres?|ml|gallons?|radians?|rads?|percent|sq|square|cubic|"
    "students?|people|persons?|points?|ways?|times|steps?|coins?|marbles?|apples?|pages?|eggs?|"
    "boxes|books?|cups?|tickets?|cookies?|trees?|pieces?|items?|mg|cc|km/h|m/s|ergs?|kelvin"
)
# words a trailing \text{...} may hold and still be a unit; anything else there is part of the answer
_UNIT_TEXT_WORDS = _UNIT_WORDS + (
    "|m|g|s|h|l|L|J|N|W|V|A|K|Hz|Pa|mol|km|cal|kcal|inches|sq|units|square|cubic|meter|metre|nm|um|"
    "dozen|percent|mi|lb|lbs|gal|hr|min|sec|ms|per|feet|pounds|cents|dollars|euros?|yuan|rupees?|"
    "centimeters?|millimeters?|kilometers?|kilograms?|milligrams?|liters?|milliliters?|mL|qt|pt|"
    "acres?|hectares?|ha|mph|km/hr|m/min|cm/s|m/s\\^2|kg/m\\^3|atm|eV|keV|MeV|GeV|au|AU|pc|ly|Mpc|kpc|yr|"
    "s\\^\\{-1\\}|sec\\^\\{-1\\}|arcsec|arcmin|Kelvin|C|F|th|rd|nd|st|x"
)
_SUBSTITUTIONS = [
    (re.compile(r"(?<!\\)\\\\(?=[A-Za-z]{2,})"), r"\\"),  # "\\frac" from a doubled raw string
    (re.compile(r"\\\$"), ""),
    (re.compile(r"\$"), ""),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)\s*\."), ""),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])"), ""),
    (re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])"), ""),
    (re.compile(r"\\[dtc]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![A-Za-z])"), r"\\binom"),
    (re.compile(r"(?<=\d)\s*(?:,\\!|\{\s*,\s*\})\s*(?=\d)"), ""),  # {,} and ,\! only ever group digits
    (re.compile(r"(?<=\d)(?:\\[,;: !]|~)(?=\d{3}(?!\d))"), ","),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<!\\)\\!"), ""),
    (
        re.compile(r"(?<!\\)\\(?:[,;: ]|qquad|quad)|(?<!\\)\\(?:enspace|thinspace|medspace|thickspace)(?![A-Za-z])|~"),
        " ",
    ),
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])"), ""),
    (re.compile(r"\\%|%|\\percent(?![A-Za-z])|(?<=\d)\s*(?:pct|percentage|percent)\.?\s*$"), ""),
    (re.compile(r"\\lt(?![A-Za-z])"), "<"),
    (re.compile(r"\\gt(?![A-Za-z])"), ">"),
    (re.compile(r"(?<![\\])\\\s*$"), ""),  # a stray trailing backslash ("185\\")
    (re.compile(r"^(\d+)\s+(\d+)\s*/\s*(\d+)$"), r"\1\\frac{\2}{\3}"),  # mixed number "3128 1/2"
    (re.compile(r"(?<=[)\]])\s*(?:or|and)\s*(?=[(\[])"), ", "),
    (re.compile(r"\^\s*\{\s*\\prime\s*\}|\^\s*\\prime(?![A-Za-z])|\\prime(?![A-Za-z])"), "'"),
    (re.compile(r"\\(?:lvert|rvert|vert|mid)(?![A-Za-z])|\\\|"), "|"),
    (re.compile(r"\\(?:lbrace)(?![A-Za-z])"), r"\\{"),
    (re.compile(r"\\(?:rbrace)(?![A-Za-z])"), r"\\}"),
    (re.compile(r"\\langle(?![A-Za-z])"), "("),
    (re.compile(r"\\rangle(?![A-Za-z])"), ")"),
    (re.compile(r"\\(?:leq|leqslant|le)(?![A-Za-z])|<="), r"\\le "),
    (re.compile(r"\\(?:geq|geqslant|ge)(?![A-Za-z])|>="), r"\\ge "),
    (re.compile(r"\\(?:neq|ne)(?![A-Za-z])|!="), r"\\ne "),
    (re.compile(r"\\(?:infty|inf|infinity)(?![A-Za-z])"), r"\\infty "),
    (re.compile(r"\\(?:emptyset|varnothing|O)(?![A-Za-z])|\\\{\s*\\\}|\{\s*\}"), r"\\varnothing "),
    (re.compile(r"\\(?:dots|ldots|cdots)(?![A-Za-z])"), r"\\dots "),
    (re.compile(r"\\(?:mathrm|text|operatorname)\s*\{\s*([eiE])\s*\}"), r"\1"),
]
_UNIT_TEXT_RE = re.compile(
    r"\s*\\(?:text|mbox|mathrm|textrm|rm|textnormal|textit|textbf|mathbf)\s*\{\s*"
    rf"(?:(?:{_UNIT_TEXT_WORDS})(?:\s*\^\s*\{{?-?\d\}}?|\s*[23])?\.?[\s/\-]*)+\}}"
    r"\s*(?:\^\s*\{?\s*-?\d\s*\}?)?\s*$"
)
_UNIT_BEFORE_COMMA_RE = re.compile(rf"(?<=\d)\s+(?:{_UNIT_WORDS})(?=\s*,)")
_UNIT_WORD_RE = re.compile(
    rf"(?<=[\d}}.)\s])\s*(?:(?:square|sq\.?|cubic)\s+)?(?:{_UNIT_WORDS})(?:\s*\^\s*\{{?\d\}}?|\s*[23])?\.?\s*$"
)
_TEXT_WRAPPER_RE = re.compile(rf"\\(?:{_TEXT_COMMANDS})\s*\{{([^{{}}]*)\}}")
# a number right after an opening bracket is the first of a pair, not a grouped thousand: (12,102)
_THOUSANDS_RE = re.compile(r"(?<![\d.,(\[])\d{1,3}(?:,\d{3})+(?![\d,]|\.\d*,)")
_IN_PREFIX_RE = re.compile(r"^\s*[A-Za-z]\s*\\in(?![A-Za-z])\s*")
_AND_RE = re.compile(r"(?<=\S)\s+(?:and|or)\s+(?=\S)")
_SPACE_RE = re.compile(r"\s+")


def normalize(answer: str) -> str:
    """Canonical form of an answer string (single spaces kept; compare with ``compact``)."""
    text = _UNICODE_RE.sub(lambda m: _UNICODE[m.group()], answer.strip())
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    text = _strip_units(_UNIT_BEFORE_COMMA_RE.sub("", text))
    text = _unwrap_text(text)
    text = _THOUSANDS_RE.sub(lambda m: m.group().replace(",", ""), text)
    text = _IN_PREFIX_RE.sub("", text)
    text = _AND_RE.sub(", ", text)
    text = _SPACE_RE.sub(" ", text).strip()
    return text.rstrip(".;,:").strip()


def compact(text: str) -> str:
    return text.replace(" ", "")


def _strip_units(text: str) -> str:
    """Drop trailing units written as text, but never the whole answer (\\text{east} stays)."""
    for _ in range(4):
        match = _UNIT_TEXT_RE.search(text) or _UNIT_WORD_RE.search(text)
        if match is None or not _has_value(text[: match.start()]):
            return text
        text = text[: match.start()]
    return text


def _has_value(prefix: str) -> bool:
    stripped = prefix.strip()
    return bool(stripped) and bool(re.search(r"[\d}a-zA-Z)]", stripped[-1]))


def _unwrap_text(text: str) -> str:
    # innermost groups first, so nested wrappers like \text{\textbf{A}} come out whole
    for _ in range(6):
        new = _TEXT_WRAPPER_RE.sub(lambda m: m.group(1), text)
        if new == text:
            break
        text = new
    return text


_WORD_ANSWER_RE = re.compile(r"^[A-Za-z][A-Za-z'\- ]*[A-Za-z]$")


def is_word_answer(normalized: str) -> bool:
    """A plain-language answer ('east', 'Evelyn', 'no solution') rather than a product of symbols."""
    if not _WORD_ANSWER_RE.match(normalized):
        return False
    return any(len(word) >= 3 for word in re.split(r"[ \-']", normalized))


def text_key(normalized: str) -> str:
    return _SPACE_RE.sub(" ", normalized.casefold()).strip(" .")
