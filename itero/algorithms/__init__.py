"""One file per algorithm. Each module has:

- ``Config``: its config section (``name`` is the discriminator; ClassVars ``min_samples_per_prompt``
  and ``needs_reference`` tell the loop what it needs);
- ``select(batch, cfg, rng) -> (batch, stats)``: which rows train (filters, pairs), before any log-probs;
- ``prepare(batch, cfg) -> batch``: credit assignment and loss weights over the whole selected batch;
- ``loss(micro_batch, logprobs, cfg) -> (loss, metrics)``: the objective of one micro-batch;
- ``rows_per_unit``: rows that must stay in one micro-batch (2 for a chosen/rejected pair).

Policy-gradient configs also set ``needs_old_logprobs``: the loop then stores the sampling policy's
log-probs (learner forward) in ``old_logprobs`` before ``prepare``. Further needs the loop serves
before ``prepare``: ``needs_value_model`` (a critic's V_old in ``values``; the critic is trained after
the actor with the module's ``value_loss``), ``needs_mc_values`` (VinePPO: the module's
``estimate_advantages`` gets a rollout function), ``needs_dpo_model`` (RTO: ``dpo_logprobs``).

A new algorithm is one new file plus one entry below.
"""

from itero.algorithms import cispo, dapo, distill, dpo, grpo, gspo, ppo, raft, reinforce_pp, rloo, rto, vineppo

ALGORITHMS = {
    "cispo": cispo,
    "dapo": dapo,
    "distill": distill,
    "dpo": dpo,
    "grpo": grpo,
    "gspo": gspo,
    "ppo": ppo,
    "raft": raft,
    "reinforce_pp": reinforce_pp,
    "rloo": rloo,
    "rto": rto,
    "vineppo": vineppo,
}
