"""Moving the learner's weights into a rollout engine, and checking the engine really serves them.

Three pieces, each usable without vLLM (so they run and are tested on CPU):

* ``gathered_state_dict(model)``: the learner's full parameters one tensor at a time, gathering
  ZeRO-3 / FSDP shards first. Every rank needs every full tensor, because each rank feeds its own
  colocated engine; that is why this does not use ``accelerator.get_state_dict``, which gathers to
  rank 0 only (FULL_STATE_DICT rank0_only for FSDP, the consolidated 16-bit dict for ZeRO-3).
* ``vllm_weight_items``: HF parameter names as the engine's ``load_weights`` expects them, with the
  names distributed wrappers add taken out, and non-policy heads skipped.
* ``check_sync``: the decision, on numbers, whether a sync reached the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

# Inserted anywhere in a name: FSDP1 units, activation checkpointing, torch.compile.
WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
# Wrap the whole model: DistributedDataParallel and DeepSpeedEngine both store it as ``.module``.
LEADING_WRAPPER = "module."
# Not part of the policy: value heads (TRL's v_head, a critic's or reward model's score head).
SKIPPED_PREFIXES = ("v_head.", "score.")
# Buffers the engine computes itself (older checkpoints still carry them).
SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)

NameMap = Mapping[str, str | None] | Callable[[str], str | None]


def engine_weight_name(name: str) -> str:
    """The parameter name without the parts distributed wrappers add. Qwen2 / Llama HF names are
    exactly what vLLM's ``load_weights`` takes (it fuses q/k/v and gate/up itself)."""
    for part in WRAPPER_PARTS:
        name = name.replace(part, "")
    while name.startswith(LEADING_WRAPPER):
        name = name[len(LEADING_WRAPPER) :]
    return name


def vllm_weight_items(
    weights: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]], name_map: NameMap | None = None
) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) pairs for the engine's ``load_weights``, lazily (tensors are not copied).

    ``name_map`` renames after the wrappers are stripped, for architectures whose engine names
    differ: a dict (names not in it pass through) or a function; None as the new name skips the tensor.
    """
    items = weights.items() if isinstance(weights, Mapping) else weights
    for raw_name, tensor in items:
        name = engine_weight_name(raw_name)
        if name.endswith("_flat_param"):
            raise ValueError(
                f"{raw_name!r} is an FSDP flat parameter: its shards cannot be loaded into an engine; "
                "pass the model through gathered_state_dict (or use FSDP with use_orig_params=True)"
            )
        if name.startswith(SKIPPED_PREFIXES) or name.endswith(SKIPPED_SUFFIXES):
            continue
        if name_map is not None:
            name = name_map(name) if callable(name_map) else name_map.get(name, name)
            if name is None:
                continue
        yield name, tensor


def gathered_state_dict(model: torch.nn.Module) -> Iterator[tuple[str, Tensor]]:
    """The full parameters of ``model`` as (name, tensor), one at a time, whatever shards them.

    Plain / DDP models give their parameters as they are; DeepSpeed ZeRO-3 gathers each parameter
    (``deepspeed.zero.GatheredParameters``); FSDP2 (DTensor parameters) all-gathers each with
    ``full_tensor()``; FSDP1 gathers one FSDP unit at a time. A tensor is valid only until the next
    one is drawn (ZeRO-3 / FSDP1 re-shard it), so stream the iterator straight into ``load_weights``
    as TRL does parameter by parameter: peak memory is one parameter (one FSDP unit), not a second
    copy of the model. The gathers are collectives: every rank must draw every item, in this order.
    """
    fsdp1 = _fsdp1_class()
    if fsdp1 is not None and any(isinstance(m, fsdp1) for m in model.modules()):
        yield from _fsdp1_params(model, fsdp1)
        return
    zero3 = any(hasattr(p, "ds_id") for p in model.parameters())  # ZeRO-3 partitions parameters in place
    gather = _zero3_gather() if zero3 else None
    for name, param in model.named_parameters():
        if gather is not None:
            with gather([param]):
                yield name, param.data
        elif hasattr(param, "full_tensor"):  # a DTensor: FSDP2's fully_shard
            yield name, param.full_tensor()
        else:
            yield name, param.data


def _fsdp1_params(model, fsdp_cls) -> Iterator[tuple[str, Tensor]]:
    # One FSDP unit gathered at a time (recurse=False), as TRL's _sync_fsdp1_params_to_vllm, so peak
    # memory is one unit's full parameters. Units in pre-order: the root first, because FSDP's lazy
    # init takes the first unit it unshards for the root. A unit yields only the parameters it owns:
    # those of units nested in it are still shards during its gather and come with their own unit.
    units = [(name, m) for name, m in model.named_modules() if isinstance(m, fsdp_cls)]
    for unit_name, unit in units:
        inner = [engine_weight_name(n) + "." for n, m in unit.named_modules() if n and isinstance(m, fsdp_cls)]
        with fsdp_cls.summon_full_params(unit, recurse=False, writeback=False):
            for name, param in unit.named_parameters():
                name = engine_weight_name(name)
                if not name.startswith(tuple(inner)):
                    yield engine_weight_name(f"{unit_name}.{name}" if unit_name else name), param.data


def _fsdp1_class():
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # torch built without distributed
        return None
    return FullyShardedDataParallel


def _zero3_gather():
    import deepspeed  # only a ZeRO-3 model (its parameters carry ds_id) gets here

    return deepspeed.zero.GatheredParameters


def learner_probe_logprobs(model: torch.nn.Module, probe_ids: Sequence[int]) -> list[float]:
    """log π_learner(probe_ids[t] | probe_ids[:t]) for t = 1..L-1, from the learner's own forward.

    Under ZeRO-3 / FSDP the forward is a collective, so every rank must call this.
    """
    device = next(model.parameters()).device
    ids = torch.tensor([list(probe_ids)], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()  # dropout off, as in the engine
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
    finally:
        model.train(was_training)
    return logits.log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1).tolist()


def prompt_token_logprobs(prompt_logprobs: Sequence, probe_ids: Sequence[int]) -> list[float]:
    """The engine's log-prob of each probe token from its ``RequestOutput.prompt_logprobs``: one
    dict token_id → Logprob per position (None at position 0, which has no context)."""
    if len(prompt_logprobs) != len(probe_ids):
        raise ValueError(f"{len(prompt_logprobs)} prompt log-prob entries for {len(probe_ids)} probe tokens")
    return [float(entry[int(t)].logprob) for entry, t in zip(prompt_logprobs[1:], probe_ids[1:])]


class WeightSyncError(RuntimeError):
    pass


def check_sync(
    before: Sequence[float] | None,
    after: Sequence[float],
    *,
    learner: Sequence[float] | None = None,
    weights_changed: bool = True,
    atol: float = 0.0,
    learner_atol: float = 0.05,
) -> dict[str, float]:
    """Decide from probe log-probs whether the engine serves the weights just loaded; raise if not.

    ``before`` / ``after``: the engine's log-probs of a fixed token sequence around the load;
    ``learner``: the learner's own log-probs of it. With the learner's numbers the test is direct:
    the engine must agree with them to ``learner_atol`` nats per token on average (bf16 engines differ
    from the learner by ~1e-2). Without them, the engine's log-probs must have moved by more than
    ``atol`` when ``weights_changed``. The learner test is preferred: at the source recipes' learning
    rates (5e-7) one step can leave bf16 weights, hence the engine's log-probs, bitwise unchanged
    although the sync worked, while a sync that loaded nothing or the wrong tensors shows as a gap.
    """
    stats: dict[str, float] = {}
    if before is not None:
        if len(before) != len(after):
            raise ValueError(f"before has {len(before)} log-probs and after {len(after)}: use the same probe")
        stats["sync/logprob_shift"] = max((abs(a - b) for a, b in zip(after, before)), default=0.0)
    if learner is not None:
        if len(learner) != len(after):
            raise ValueError(f"learner has {len(learner)} log-probs and the engine {len(after)}: use the same probe")
        gap = sum(abs(a - b) for a, b in zip(after, learner)) / max(len(after), 1)
        stats["sync/learner_gap"] = gap
        if gap > learner_atol:
            raise WeightSyncError(
                f"after the weight sync the engine's log-probs differ from the learner's by {gap:.4f} nats per "
                f"token on average (> {learner_atol}): the engine does not serve the learner's weights (names "
                "that load_weights skipped? a stale engine?)"
            )
    elif weights_changed and before is not None and stats["sync/logprob_shift"] <= atol:
        raise WeightSyncError(
            f"the weights changed but the engine's log-probs of the probe moved by at most "
            f"{stats['sync/logprob_shift']:.3g} (<= {atol}): the engine still serves the old weights"
        )
    return stats
