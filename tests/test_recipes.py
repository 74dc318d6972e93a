"""Every recipe under configs/recipes dry-runs through `itero train RECIPE --dry-run` (the CLI function)."""

import math
import re
from pathlib import Path

import pytest

from itero.cli import main
from itero.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))
EXPECTED = {
    "online_dpo_r1",
    "online_dpo_r1_raft",
    "online_dpo_r1_dpo_nll",
    "grpo_qwen25_math_7b",
    "dr_grpo_qwen25_math_7b",
    *(f"samplers_safe_rlhf_{s}" for s in ("ref", "online", "gshf", "mixp")),
    *(f"{a}_{m}_math" for a in ("ppo", "vineppo") for m in ("rho1b", "deepseekmath7b")),
    "rto_llama3_8b",
}


def _dry_run(capsys, path, *overrides) -> str:
    assert main(["train", str(path), *overrides, "--dry-run"]) == 0  # options after the overrides
    return capsys.readouterr().out


def _value(out: str, label: str) -> int:
    """The number at the end of the first plan row that starts with ``label``."""
    match = re.search(rf"^\s+{re.escape(label)}.*?\s([\d,]+)$", out, re.MULTILINE)
    assert match, f"no row {label!r} in\n{out}"
    return int(match.group(1).replace(",", ""))


def test_every_source_recipe_is_there():
    assert {p.stem for p in RECIPES} == EXPECTED


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_runs_with_a_consistent_plan(path, capsys, tmp_path):
    runs = tmp_path / "runs"
    out = _dry_run(capsys, path, f"logging.run_dir={runs}")
    assert not runs.exists()  # a dry run touches no run directory
    cfg = load_config(path)
    g, t, loop = cfg.generation, cfg.training, cfg.loop
    samples = loop.prompts_per_iteration * g.n_samples_per_prompt
    assert _value(out, "prompts") == loop.prompts_per_iteration
    assert _value(out, "samples (") == samples
    assert _value(out, "tokens to generate (") == samples * g.max_new_tokens
    units = _value(out, "training ")
    assert units == (loop.prompts_per_iteration if cfg.algorithm.name == "dpo" else samples)
    steps = t.epochs * math.ceil(units / t.batch_size)
    assert _value(out, "optimizer steps (") == steps
    gpus = cfg.distributed.num_processes
    assert f"per GPU per step: {t.batch_size // gpus} " in out
    over = out.split(f"over {loop.iterations} iterations")[1]
    assert _value(over, "optimizer steps") == loop.iterations * steps
    # the sources' hardware: 8 GPUs of 80 GB (4 for VinePPO's 1.1B model), and every recipe fits it
    assert gpus == (4 if "rho1b" in path.stem else 8) and cfg.distributed.gpu_memory_gb == 80
    assert "memory per GPU" in out and "policy" in out and "will NOT fit" not in out


def test_online_dpo_r1_has_the_source_values(capsys):
    cfg = load_config(ROOT / "configs/recipes/online_dpo_r1.yaml")
    a, g, r = cfg.algorithm, cfg.generation, cfg.reward
    assert (cfg.model.path, cfg.loop.iterations, g.n_samples_per_prompt, g.temperature, g.max_new_tokens) == (
        "Qwen/Qwen2.5-Math-7B",
        9,
        8,
        1.0,
        4096,
    )
    assert (a.name, a.loss, a.beta, a.label_smoothing, a.reference, cfg.training.lr) == (
        "dpo",
        "sigmoid",
        0.1,
        0.1,
        "previous",
        5e-7,
    )
    assert (r.correct, r.wrong, r.no_answer) == (1.0, -0.5, -1.0)
    assert cfg.distributed.strategy == "zero3"
    out = _dry_run(capsys, ROOT / "configs/recipes/online_dpo_r1.yaml")
    assert "7.62B" in out and "exceeds the policy's context of 4096" in out


@pytest.mark.parametrize("sampler", ["ref", "online", "gshf", "mixp"])
def test_samplers_recipes(sampler, capsys):
    path = ROOT / f"configs/recipes/samplers_safe_rlhf_{sampler}.yaml"
    cfg = load_config(path)
    a = cfg.algorithm
    assert (a.loss, a.margin_scale, a.beta, a.reference, cfg.generation.sampler) == (
        "rev_kl",
        4.0,
        0.1,
        "initial",
        sampler,
    )
    assert cfg.reward.name == "model" and cfg.distributed.strategy == "zero3"
    out = _dry_run(capsys, path)
    assert "reward model" in out and "reference" in out  # frozen RM and initial model on the GPUs


def test_small_gpus_get_a_clear_warning(capsys):
    out = _dry_run(
        capsys,
        ROOT / "configs/recipes/online_dpo_r1.yaml",
        "distributed.gpu_memory_gb=24",
        "distributed.strategy=zero2",
    )
    assert "WARNING: will NOT fit" in out and "distributed.strategy=zero3" in out


def test_invalid_recipe_override_fails_before_planning(capsys):
    assert (
        main(["train", str(ROOT / "configs/recipes/online_dpo_r1.yaml"), "distributed.num_nodes=3", "--dry-run"]) == 2
    )
    err = capsys.readouterr().err
    assert "distributed.num_processes=8" in err and "distributed.num_nodes=3" in err


def test_the_plan_says_which_iterations_train_the_critic_alone(capsys):
    # configs/ppo.yaml: 512 prompts x 8 samples, 4 epochs of batch 64 -> 256 steps per iteration
    out = _dry_run(capsys, ROOT / "configs/ppo.yaml", "algorithm.critic_warmup=2", "loop.iterations=7")
    assert "iterations 1-2 train the critic only" in out and "the policy takes 1,280 of the optimizer steps" in out
    assert "critic only" not in _dry_run(capsys, ROOT / "configs/ppo.yaml")


def test_overrides_after_an_option_are_overrides_and_stray_words_are_errors(capsys):
    path = str(ROOT / "configs/ppo.yaml")
    assert main(["train", path, "--dry-run", "loop.prompts_per_iteration=16", "loop.iterations=3"]) == 0
    out = capsys.readouterr().out
    assert _value(out, "prompts") == 16 and "over 3 iterations" in out
    with pytest.raises(SystemExit):
        main(["train", path, "--dry-run", "loopiterations3"])
    assert "unrecognized arguments: loopiterations3" in capsys.readouterr().err
