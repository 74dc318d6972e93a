"""How the learner cuts one rank's share of a mini-batch into micro-batches.

Two plans, both lists of units (a unit is ``rows_per_unit`` consecutive rows that stay together, a
DPO chosen/rejected pair):

- fixed: ``micro_batch_size`` units per micro-batch, in the mini-batch's shuffled order;
- token budget (``training.max_tokens_per_micro_batch``, verl's dynamic batch size): units sorted by
  length, longest first, packed into consecutive bins whose padded size, rows × (longest prompt +
  longest response) as ``RolloutBatch.trimmed`` leaves them, stays within the budget. Short rows then
  share a forward with short rows, so a micro-batch pads to its own longest row instead of the batch's.

verl (``verl/utils/seqlen_balancing.py``, ``rearrange_micro_batches``) removes padding altogether, so it
budgets the sum of real tokens: it takes ceil(total / budget) micro-batches and balances their sums
(Karmarkar–Karp). itero's forwards run on padded (B, P+R) tensors, so the cost of a bin is its padded
size and sorting by length is what keeps it small. What both share: a unit never splits, a unit longer
than the budget trains alone, and under data parallelism the ranks agree on the largest count (ranks
with fewer run empty micro-batches of zero weight) so a sharded model's collectives line up.
"""

from __future__ import annotations

import math

from torch import Tensor

from itero.batch import RolloutBatch


def fixed(units: list[int], size: int) -> list[list[int]]:
    """``size`` units per micro-batch, in order (the last one may hold fewer)."""
    return [units[i : i + size] for i in range(0, len(units), size)]


def unit_widths(batch: RolloutBatch, rows_per_unit: int) -> tuple[list[int], list[int]]:
    """Per unit: the prompt and response columns its rows keep once trimmed (the widest row of the unit).

    A prompt is left-padded, so it keeps the columns from its first real token; a response keeps the
    columns up to its last trained token. Both as ``RolloutBatch.trimmed`` cuts a micro-batch.
    """
    P = batch.prompt_mask.shape[1]
    prompt = _first_true(batch.prompt_mask).neg().add(P)  # (B,) P - first real column
    response = _last_true(batch.response_mask) + 1  # (B,) 0 for an empty response
    prompt = prompt.view(-1, rows_per_unit).max(-1).values  # (U,)
    response = response.view(-1, rows_per_unit).max(-1).values  # (U,)
    return prompt.tolist(), response.tolist()


def by_tokens(
    units: list[int], prompt: list[int], response: list[int], rows_per_unit: int, max_tokens: int
) -> list[list[int]]:
    """``units`` packed into bins of padded size rows × (max prompt + max response) ≤ ``max_tokens``.

    ``prompt`` / ``response``: every unit's trimmed widths (``unit_widths``), indexed by unit. Units go
    longest first (ties in the given order) into the current bin while the bin still fits, else open
    the next one: a unit wider than the budget on its own gets a bin to itself.
    """
    order = sorted(units, key=lambda u: -(prompt[u] + response[u]))
    bins: list[list[int]] = []
    p = r = 0
    for u in order:
        wider_p, wider_r = max(p, prompt[u]), max(r, response[u])
        if bins and (len(bins[-1]) + 1) * rows_per_unit * (wider_p + wider_r) <= max_tokens:
            bins[-1].append(u)
            p, r = wider_p, wider_r
        else:
            bins.append([u])
            p, r = prompt[u], response[u]
    return bins


def padded_tokens(units: list[int], prompt: list[int], response: list[int], rows_per_unit: int) -> int:
    """The (B, P+R) size of a micro-batch of ``units`` once trimmed; 0 for none."""
    if not units:
        return 0
    return len(units) * rows_per_unit * (max(prompt[u] for u in units) + max(response[u] for u in units))


def count_fixed(num_units: int, world_size: int, size: int) -> int:
    """Micro-batches of the rank with the largest share (``units[rank::world_size]``)."""
    return math.ceil(math.ceil(num_units / world_size) / size)


def _first_true(mask: Tensor) -> Tensor:
    """(B,) index of the first True per row; the width for an all-False row."""
    width = mask.shape[1]
    index = mask.long().argmax(-1)
    return index.where(mask.any(-1), index.new_full((), width))


def _last_true(mask: Tensor) -> Tensor:
    """(B,) index of the last True per row; -1 for an all-False row."""
    width = mask.shape[1]
    index = width - 1 - mask.flip(-1).long().argmax(-1)
    return index.where(mask.any(-1), index.new_full((), -1))
