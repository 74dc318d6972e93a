"""Sharding a trained model over the data-parallel ranks with PyTorch FSDP2 (``fully_shard``).

``distributed.strategy`` picks what each rank keeps: ``ddp`` a whole replica (gradients summed by
``Dist.all_reduce_gradients``); ``zero3`` / ``fsdp`` parameters, gradients and optimizer state sharded,
parameters re-gathered for each forward and backward (FSDP's FULL_SHARD, DeepSpeed's ZeRO-3);
``zero2`` the same but parameters stay gathered from forward to backward (SHARD_GRAD_OP, ZeRO-2's
memory for gradients and optimizer state, one all-gather per step instead of two). FSDP2 is the
engine accelerate's FSDP plugin drives too; it runs on CPU over gloo, which is how it is tested here.

A sharded forward is a collective: every rank must run the same number of forwards and backwards,
so the learner gives a rank without rows a zero-weight micro-batch, ``Dist.map_rows`` gives every rank
the same number of rows, and generation runs on a separate plain copy of the policy.
Checkpoints stay ordinary full ``save_pretrained`` folders (gathered to rank 0), so a run resumes on
any number of processes and with any strategy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

SHARDED_STRATEGIES = ("fsdp", "zero2", "zero3")


def launcher_strategy(configured: str, env: Mapping[str, str] | None = None) -> str:
    """The strategy, with an ``accelerate launch`` config's choice (DeepSpeed ZeRO stage or FSDP sharding
    strategy, passed in the environment) applied when the itero config leaves ``ddp``. DeepSpeed's
    stages map to their FSDP2 equivalents: itero shards with FSDP2 in both cases."""
    env = os.environ if env is None else env
    chosen, source = None, None
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
        chosen, source = (
            {"0": "ddp", "1": "zero2", "2": "zero2", "3": "zero3"}.get(stage),
            f"DeepSpeed ZeRO stage {stage}",
        )
    elif env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        spec = env.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper()
        if env.get("FSDP_RESHARD_AFTER_FORWARD", "").lower() == "false":
            spec = "SHARD_GRAD_OP"
        chosen = {
            "FULL_SHARD": "fsdp",
            "1": "fsdp",
            "SHARD_GRAD_OP": "zero2",
            "2": "zero2",
            "NO_SHARD": "ddp",
            "3": "ddp",
        }.get(spec)
        source = f"FSDP {spec}"
    if chosen is None:
        return configured
    if configured not in ("ddp", chosen):
        raise ValueError(
            f"distributed.strategy={configured} but the accelerate launch config asks for {source} ({chosen}); "
            "choose one of them"
        )
    return chosen


def is_sharded(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch built without distributed
        return False
    return isinstance(model, FSDPModule)


def _block_classes(model: nn.Module) -> set[str]:
    """Class names of the transformer blocks, from the HF models' own ``_no_split_modules``."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_model(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """``fully_shard`` every transformer block, then the root (embeddings, norm, heads), in place."""
    import torch.distributed as tdist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if strategy not in SHARDED_STRATEGIES:
        raise ValueError(f"strategy {strategy!r} does not shard; choose one of {', '.join(SHARDED_STRATEGIES)}")
    mesh = init_device_mesh(device.type, (tdist.get_world_size(),))
    reshard = strategy != "zero2"
    blocks = _block_classes(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no transformer blocks (_no_split_modules): cannot shard it")
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
    for module in model.modules():  # per FSDP unit: the root's setting does not reach the blocks
        if is_sharded(module):
            # each rank's loss already carries its share of the mini-batch (the learner's weights): sum, not mean
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # plain SUM collectives (gloo has no PREMUL_SUM)
    if not reshard:
        # zero2 keeps a forward's gathered blocks for the backward; a no-grad forward (old / ref log-probs,
        # V_old, the engine's probe) has none, so shard back at once instead of holding a full copy
        model.register_forward_hook(_reshard_after_no_grad_forward)
    return model


def _reshard_after_no_grad_forward(module: nn.Module, args, output) -> None:
    if not torch.is_grad_enabled():
        reshard(module)


def local_fraction(model: nn.Module) -> tuple[int, int]:
    """(elements this rank stores, elements of the whole model) over the parameters: what sharding saves
    on weights, and in the same ratio on gradients and AdamW state."""
    local = total = 0
    for p in model.parameters():
        local += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
        total += p.numel()  # a DTensor's numel is the global one
    return local, total


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skip the reduce-scatter on all but a mini-batch's last micro-batch (gradients accumulate locally)."""
    if is_sharded(model):
        model.set_requires_gradient_sync(enabled)


def reshard(model: nn.Module) -> None:
    """Back to sharded parameters (what a ``zero2`` model's root does after every no-grad forward)."""
    for module in model.modules():
        if is_sharded(module):
            module.reshard()


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's parameters and buffers on CPU on rank 0 (empty elsewhere). Collective. A tied
    weight appears once (as ``named_parameters`` and ``save_pretrained`` give it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    own = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    return {name: tensor for name, tensor in state.items() if name in own}


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Copy full tensors into a sharded model, each rank keeping its own shard; no communication, so
    one rank alone may call it (every rank reads the same checkpoint). Returns (missing, unexpected)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    own = model.state_dict(keep_vars=True)  # persistent buffers and both names of tied weights
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    with torch.no_grad():
        for name, value in state.items():
            target = own.get(name)
            if target is None:
                continue
            if isinstance(target, DTensor):
                shard = distribute_tensor(
                    value.to(target.dtype), target.device_mesh, target.placements, src_data_rank=None
                )
                target.to_local().copy_(shard.to_local())
            else:
                target.copy_(value)
    return missing, unexpected


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name, unsharded, on CPU on rank 0. Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a full optimizer state, keyed by parameter name (``full_optimizer_state``) or by index (an
    unsharded run's ``optimizer.state_dict()``), into a sharded or plain model's optimizer: each rank
    keeps its own shard of every per-parameter tensor. No communication."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]  # the optimizer's order
    index = {name: i for i, (name, _) in enumerate(named)}
    key = (lambda k: k) if all(isinstance(k, int) for k in state["state"]) else index.__getitem__
    per_param = {}
    for k, values in state["state"].items():
        param = named[key(k)][1]
        if isinstance(param, DTensor):  # exp_avg / exp_avg_sq have the parameter's shape; step is a scalar
            values = {
                name: distribute_tensor(v, param.device_mesh, param.placements, src_data_rank=None)
                if torch.is_tensor(v) and v.shape == param.shape
                else v
                for name, v in values.items()
            }
        per_param[key(k)] = values
    groups = [{**g, "params": [key(k) for k in g["params"]]} for g in state["param_groups"]]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})


def as_float(value: torch.Tensor) -> float:
    """A scalar that may be a DTensor (e.g. a sharded model's gradient norm)."""
    return float(value.full_tensor() if hasattr(value, "full_tensor") else value)
