"""VinePPO step machinery (docs/formulas.md): split a response into reasoning steps, map steps to
token ranges, and build the (de-duplicated) intermediate states that Monte-Carlo rollouts start from.

Pure Python (no transformers import). The maths that consumes these pieces lives in
``itero.core.advantages``: ``step_advantages_from_mc_values`` (A_i = r_i + V̂(s_{i+1}) − V̂(s_i)) and
``broadcast_step_advantages`` (step → token advantages; feed it :func:`token_step_index`).

Splitting rules (a simplified version of VinePPO's ``math_extract_steps_inplace``):
- cut after a newline, and after ``.``/``?``/``!`` that is followed by whitespace; the whitespace run
  after the cut character stays attached to the step it ends;
- never cut inside a protected span: ``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]`` or a balanced brace
  group ``{…}`` (e.g. ``\\boxed{…}``). An opener without a closer is treated as a literal character;
- a period between digits (``3.5``) is never a cut since it is not followed by whitespace;
- fragments whose stripped length is < ``min_chars`` are merged into the previous step (into the
  next one when they are first).
Steps are contiguous substrings, so ``"".join(split_steps(t)) == t`` always holds.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from typing import Any

_SENTENCE_END = ".?!"


def _brace_matches(text: str) -> dict[int, int]:
    """Index of each '{' → index of its matching '}' (escaped braces ``\\{ \\}`` are ignored)."""
    matches: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            matches[stack.pop()] = i
        i += 1
    return matches


def _protected_mask(text: str) -> list[bool]:
    """True for every character inside (and including the delimiters of) a protected math/brace span."""
    n = len(text)
    mask = [False] * n
    braces = _brace_matches(text)
    failed: set[str] = set()  # closers known to be absent from the rest of the text

    def find(closer: str, start: int) -> int:
        if closer in failed:
            return -1
        j = text.find(closer, start)
        if j < 0:
            failed.add(closer)
        return j

    i = 0
    while i < n:
        end = -1  # exclusive end of a protected span starting at i
        if text.startswith("$$", i):
            j = find("$$", i + 2)
            if j >= 0:
                end = j + 2
        if end < 0 and text.startswith("\\(", i):
            j = find("\\)", i + 2)
            if j >= 0:
                end = j + 2
        if end < 0 and text.startswith("\\[", i):
            j = find("\\]", i + 2)
            if j >= 0:
                end = j + 2
        if end < 0 and text[i] == "$":
            j = find("$", i + 1)
            if j >= 0:
                end = j + 1
        if end < 0 and text[i] == "{" and i in braces:
            end = braces[i] + 1
        if end >= 0:
            for k in range(i, end):
                mask[k] = True
            i = end
        elif text[i] == "\\":
            i += 2  # escaped char (\$, \{, \\ ...) is literal
        else:
            i += 1
    return mask


def _cut_points(text: str, cut_after: str = "") -> list[int]:
    """Character indices (0 < c < len) where a new step begins, before merging short fragments.

    ``cut_after``: extra characters that always end a step (outside protected spans), e.g. " " for
    the arithmetic task's one-line "18*3=54 47+54=101 \\boxed{101}" solutions."""
    n = len(text)
    protected = _protected_mask(text)
    cuts: list[int] = []
    i = 0
    while i < n:
        c = text[i]
        is_cut = not protected[i] and (
            c == "\n" or c in cut_after or (c in _SENTENCE_END and i + 1 < n and text[i + 1].isspace())
        )
        if is_cut:
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n:
                cuts.append(j)
            i = j
        else:
            i += 1
    return cuts


def split_steps(text: str, min_chars: int = 8, cut_after: str = "") -> list[str]:
    """Split a response into reasoning steps (see the module docstring). ``"".join(result) == text``."""
    if not text:
        return []
    bounds = [0, *_cut_points(text, cut_after), len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    steps: list[str] = []
    for piece in pieces:
        if steps and len(piece.strip()) < min_chars:
            steps[-1] += piece
        else:
            steps.append(piece)
    if len(steps) > 1 and len(steps[0].strip()) < min_chars:
        steps[1] = steps[0] + steps[1]
        steps.pop(0)
    return steps


def token_step_index(step_texts: Sequence[str], token_offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Step index of each token: the step containing the token's first character.

    Tokens that start at or past the end of the text (e.g. an EOS with offset (L, L)) get the last step,
    as in VinePPO. Indices are made non-decreasing. The result is the ``token_step_index`` row expected
    by ``itero.core.advantages.broadcast_step_advantages``.
    """
    if not step_texts:
        if token_offsets:
            raise ValueError("tokens given but no steps: an empty response has no steps to map to")
        return []
    ends: list[int] = []
    total = 0
    for s in step_texts:
        total += len(s)
        ends.append(total)  # step s covers chars [ends[s-1], ends[s])
    last = len(step_texts) - 1
    out: list[int] = []
    prev = 0
    for start, _end in token_offsets:
        idx = min(bisect_right(ends, start), last)
        prev = max(prev, idx)
        out.append(prev)
    return out


def step_token_ranges(step_texts: Sequence[str], token_offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open token ranges (start, end), one per step, in order, partitioning all tokens.

    ``token_offsets[t] = (start_char, end_char)`` of response token t within ``"".join(step_texts)``
    (a fast tokenizer's offset mapping, or :func:`token_char_offsets`). A token belongs to the step
    containing its first character, so a step whose characters all fall inside a token that started
    in an earlier step gets an empty range (k, k).
    """
    idx = token_step_index(step_texts, token_offsets)
    return [(bisect_left(idx, s), bisect_left(idx, s + 1)) for s in range(len(step_texts))]


def token_char_offsets(
    tokenizer: Any, token_ids: Sequence[int], skip_special_tokens: bool = True
) -> list[tuple[int, int]]:
    """(start_char, end_char) of each token in ``tokenizer.decode(token_ids)``, by cumulative decoding.

    end_t = len(decode(token_ids[:t+1])), start_t = end_{t−1}. Works for any tokenizer with ``decode``
    (incl. byte-level BPE, where partial UTF-8 sequences are repaired by later tokens: ends are forced
    non-decreasing). Special tokens are skipped by default, so a trailing EOS gets (L, L).
    Cost: n decodes of prefixes of growing length, i.e. O(n²) token work per response — fine for
    ~1k-token responses; prefer a fast tokenizer's ``return_offsets_mapping`` (or incremental
    detokenisation) when that becomes a bottleneck.
    """
    offsets: list[tuple[int, int]] = []
    prev = 0
    ids = list(token_ids)
    for t in range(1, len(ids) + 1):
        text = tokenizer.decode(
            ids[:t],
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=False,
        )
        end = max(prev, len(text))
        offsets.append((prev, end))
        prev = end
    return offsets


def intermediate_states(step_texts: Sequence[str]) -> list[str]:
    """Response prefixes after 0 … K−1 steps (state 0 = ""); no state after the final step (V̂ = 0)."""
    states: list[str] = []
    prefix = ""
    for step in step_texts:
        states.append(prefix)
        prefix += step
    return states


def dedup_states(
    prompts_and_prefixes: Sequence[Hashable],
) -> tuple[list[Any], list[int]]:
    """Unique states in first-occurrence order and ``index_map`` with ``unique[index_map[i]] == states[i]``.

    States are typically (prompt, prefix) tuples; identical ones are rolled out only once.
    """
    position: dict[Hashable, int] = {}
    unique: list[Any] = []
    index_map: list[int] = []
    for state in prompts_and_prefixes:
        k = position.get(state)
        if k is None:
            k = position[state] = len(unique)
            unique.append(state)
        index_map.append(k)
    return unique, index_map
