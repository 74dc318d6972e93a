"""One file per algorithm. Each module has:

- ``Config``: its config section (``name`` is the discriminator; ClassVars ``min_samples_per_prompt``
  and ``needs_reference`` tell the loop what it needs);
- ``select(batch, cfg, rng) -> (batch, stats)``: which rows train (filters, pairs), before any log-probs;
- ``prepare(batch, cfg) -> batch``: credit assignment and loss weights over the whole selected batch;
- ``loss(micro_batch, logprobs, cfg) -> (loss, metrics)``: the objective of one micro-batch;
- ``rows_per_unit``: rows that must stay in one micro-batch (2 for a chosen/rejected pair).

A new algorithm is one new file plus one entry below.
"""

from itero.algorithms import dpo, raft

ALGORITHMS = {
    "dpo": dpo,
    "raft": raft,
}
