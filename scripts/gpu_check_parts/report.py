"""``gpu_check.md``: the versions, the measurements per shape, and every check's status."""

from __future__ import annotations

GiB = 1024**3


def _gib(nbytes) -> str:
    return "n/a" if nbytes is None else f"{nbytes / GiB:.2f}"


def _num(x, fmt: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _measurements(shape: str, checks: dict, batches: tuple[int, ...]) -> list[str]:
    get = lambda check, key: (checks.get(check) or {}).get(key)
    gen = " / ".join(
        f"{_num(get('generation', f'itero_b{b}_tokens_per_s'))} vs {_num(get('generation', f'generate_b{b}_tokens_per_s'))}"
        for b in batches
    )
    mfu, moved = get("learner", "mfu"), get("learner", "down_proj_fraction_changed")
    master = get("learner", "down_proj_master_fraction_changed")
    fsdp_equal = get("fsdp", "reload_equal")
    return [
        f"| {shape} | {_num(get('build', 'params'))} | {get('build', 'fast_decode') or 'n/a'} | {gen} "
        f"| {_num(get('learner', 'tokens_per_s'))} | {'n/a' if mfu is None else f'{mfu:.1%}'} | {_pct(moved)} / {_pct(master)} "
        f"| {_gib(get('memory', 'measured_peak_bytes'))} / {_gib(get('memory', 'planned_peak_bytes'))} "
        f"| {_num(get('fsdp', 'tokens_per_s'))}, {'n/a' if fsdp_equal is None else ('equal' if fsdp_equal else 'DIFFERENT')} "
        f"| {_num(get('lora', 'tokens_per_s'))}, {_gib(get('lora', 'peak_bytes'))} / {_gib(get('lora', 'planned_training_bytes'))} |"
    ]


def markdown(result: dict) -> str:
    env, work = result["env"], result["workload"]
    batches = tuple(work["gen_batches"])
    lines = [
        f"# gpu_check on {env['card']}",
        "",
        f"torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, CUDA {env['cuda']}, "
        f"python {env['python']}; {result['elapsed_s']:.0f} s of a {result['budget_s']:.0f} s budget.",
        f"Random weights in {work['dtype']}; prompts of {work['prompt_tokens']} random tokens, every row sampled "
        f"(temperature 1) to a fixed {work['new_tokens']} new tokens; learner steps of {work['train_rows']} rows "
        f"in micro-batches of {work['micro_rows']}, LoRA rank {work['lora_rank']}.",
        "",
        f"| shape | params | fast decode | gen tokens/s itero vs generate, batch {' / '.join(map(str, batches))} "
        "| learner tokens/s | MFU | weights moved: stored / fp32 master | peak GiB measured / planned | FSDP2 tokens/s, reload | LoRA tokens/s, peak GiB measured / planned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shape, entry in result["shapes"].items():
        lines += _measurements(shape, entry, batches)
    lines += ["", "| shape | check | status | seconds | error or problems |", "|---|---|---|---|---|"]
    for shape, entry in result["shapes"].items():
        for name, check in entry.items():
            why = check.get("error") or "; ".join(check.get("problems") or []) or check.get("reason", "")
            lines.append(f"| {shape} | {name} | {check['status']} | {check.get('seconds', '')} | {why} |")
    return "\n".join(lines) + "\n"
