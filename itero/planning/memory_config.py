"""A run's config turned into the models it holds per GPU (roles, shapes, precisions) and their
memory estimate: the part of the dry run that reads the config (the arithmetic is in memory.py)."""

from __future__ import annotations

from itero.planning.memory import (
    GiB,
    MemoryEstimate,
    ModelRole,
    estimate,
)
from itero.planning.shapes import ModelShape, resolve_shape


def roles_for_config(cfg) -> tuple[list[ModelRole], list[str]]:
    """The models a run of ``cfg`` holds, and notes on the ones that could not be sized or need no copy."""
    notes: list[str] = []
    policy = _policy_shape(cfg, notes)
    if policy is None:
        return [], notes
    name, a, g = cfg.model.path or "tiny model", cfg.algorithm, cfg.generation
    adapters = _adapter_params(cfg, policy, notes)
    roles = [ModelRole("policy", name, policy, trained=True, kv_cache=True, adapter_params=adapters)]
    initial_samples = g.sampler in ("ref", "gshf", "mixp")
    from itero.algorithms import ALGORITHMS

    models = ALGORITHMS[a.name].models_needed(a)
    reference = "reference" in models
    initial = models.get("reference") == "initial" or initial_samples
    if adapters and initial and "reference_logits" not in models:
        notes.append("reference = the policy with its LoRA adapters disabled (their base): no copy")
    elif initial or "reference_logits" in models:  # TDPO keeps the previous iterate's logits
        which = "initial" if initial else "previous iterate"
        roles.append(ModelRole("reference", f"{name} ({which})", policy, kv_cache=g.sampler == "mixp"))
    elif reference:
        notes.append(
            "reference = previous iterate: its log-probs are computed by the policy before the update, no copy"
        )
    if cfg.reward.name == "model":
        _add_frozen(roles, notes, "reward model", cfg.reward.model_path, scorer=True)
    dpo_model = models.get("dpo_model")
    if dpo_model and dpo_model.startswith("run:"):  # trained first in the run: a frozen copy of the policy
        roles.append(
            ModelRole(
                "DPO model", f"{name} (after {dpo_model.split('/')[1].removeprefix('iter_')} DPO iterations)", policy
            )
        )
    elif dpo_model:
        _add_frozen(roles, notes, "DPO model", dpo_model, scorer=False)
    for role, source in models.items():  # any other frozen model an algorithm names (a distillation teacher)
        if role in ("reference", "reference_logits", "dpo_model", "critic") or source in ("previous", "initial"):
            continue
        if not source.startswith("run:"):
            _add_frozen(roles, notes, role, source, scorer=False)
    if "critic" in models:
        source = models["critic"] if models["critic"] != "initial" else None
        shape = policy.as_scorer() if source is None else resolve_shape(source)[0]
        if shape is None:
            notes.append(f"value model {source!r}: unknown shape, not counted")
        else:
            roles.append(ModelRole("value model", source or f"{name} + value head", shape.as_scorer(), trained=True))
    return roles, notes


def _adapter_params(cfg, policy: ModelShape, notes: list[str]) -> int:
    lora = cfg.model.lora
    if lora is None:
        return 0
    params, unknown = policy.lora_params(lora.r, lora.target_modules)
    if unknown:
        notes.append(f"LoRA targets {unknown} are not decoder linears the estimate knows: not counted")
    return max(params, 1)


def _policy_shape(cfg, notes: list[str]) -> ModelShape | None:
    if cfg.model.path is None:
        from itero.models.tiny import (
            DEFAULT_ALPHABET,  # the character tokenizer's vocabulary
        )

        t = cfg.model.tiny
        return ModelShape(
            t.hidden_size,
            t.num_layers,
            t.num_heads,
            t.num_kv_heads,
            t.intermediate_size,
            vocab=len(set(DEFAULT_ALPHABET)) + 3,
            tie_embeddings=True,
            arch=t.arch,
            max_positions=t.max_position_embeddings,
        )
    shape, source = resolve_shape(cfg.model.path)
    if shape is None:
        notes.append(f"memory estimate skipped: {source}")
    return shape


def _add_frozen(roles: list[ModelRole], notes: list[str], role: str, path: str, scorer: bool) -> None:
    shape, source = resolve_shape(path)
    if shape is None:
        notes.append(f"{role} not counted: {source}")
        return
    roles.append(ModelRole(role, path, shape.as_scorer() if scorer else shape))


def estimate_for_config(cfg) -> tuple[MemoryEstimate | None, list[str]]:
    """(estimate, notes) for a validated Config; None when the policy's shape is unknown."""
    from itero.algorithms import ALGORITHMS

    roles, notes = roles_for_config(cfg)
    if not roles:
        return None, notes
    g, t, d = cfg.generation, cfg.training, cfg.distributed
    vllm = getattr(g, "backend", "hf") == "vllm"
    context = roles[0].shape.max_positions
    prompt_tokens = d.max_prompt_tokens or (max(context - g.max_new_tokens, 1) if context else 1024)
    est = estimate(
        roles,
        d,
        weight_bytes=4 if cfg.model.dtype == "float32" else 2,
        # with a token budget, the rows of one unit (a pair) are the least a micro-batch holds
        train_rows=(1 if t.max_tokens_per_micro_batch else t.micro_batch_size)
        * ALGORITHMS[cfg.algorithm.name].rows_per_unit,
        token_budget=t.max_tokens_per_micro_batch,
        gen_rows=g.batch_size,
        tokens=prompt_tokens + g.max_new_tokens,
        vllm_utilization=getattr(g, "vllm_gpu_memory_utilization", 0.5) if vllm else None,
        vllm_sleep=bool(getattr(g, "vllm_sleep_mode", False)),
    )
    est.notes.extend(notes)
    if cfg.model.lora is not None:
        est.notes.append(_lora_saving(cfg, est))
    if not vllm and d.strategy in ("zero3", "fsdp") and d.num_processes > 1:
        est.notes.append(
            "hf generation over sharded weights gathers every layer for every new token: slow "
            "(huggingface/trl#1900); backend vllm avoids it"
        )
    if context is not None and prompt_tokens + g.max_new_tokens > context:
        est.notes.append(
            f"prompt ({prompt_tokens}) + generation.max_new_tokens ({g.max_new_tokens}) exceeds the policy's "
            f"context of {context} tokens: long prompts leave fewer new tokens"
        )
    return est, est.notes


def _lora_saving(cfg, est: MemoryEstimate) -> str:
    """The note that compares a LoRA run's model states with the same run fully fine-tuned."""
    full, _ = estimate_for_config(cfg.model_copy(update={"model": cfg.model.model_copy(update={"lora": None})}))
    policy = est.models[0]
    lora = cfg.model.lora
    return (
        f"LoRA r={lora.r} ({lora.target_modules if isinstance(lora.target_modules, str) else ', '.join(lora.target_modules)}): "
        f"{policy.grads // 4:,} trainable parameters of {policy.params:,}; model states {est.states / GiB:.2f} GiB "
        f"against {full.states / GiB:.2f} GiB fully fine-tuned, {(full.states - est.states) / GiB:.2f} GiB saved "
        f"(no gradients or AdamW state for the base{'' if len(full.models) == len(est.models) else ', no reference copy'}); peak "
        f"{est.peak / GiB:.2f} against {full.peak / GiB:.2f} GiB"
    )
