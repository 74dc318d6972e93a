"""The loop's optional parts on a tiny run: a sampler that needs the initial model, and benchmark evaluation."""

import json

import pytest
import torch
from safetensors.torch import load_file

from itero.config import load_config
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.loop import run
from itero.models.loading import load_model, load_tokenizer
from itero.tracking.report import write_report

TINY = [
    "model.tiny.hidden_size=64",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=128",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_train=200",
    "task.arithmetic.num_test=20",
    "sft.num_examples=100",
    "sft.steps=30",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "generation.max_new_tokens=24",
    "generation.n_samples_per_prompt=4",
    "loop.prompts_per_iteration=16",
    "loop.iterations=2",
    "eval.k=2",
    "logging.progress=false",
]


@pytest.mark.slow
def test_gshf_sampler_tdpo_and_benchmarks_in_the_loop(tmp_path):
    overrides = TINY + [
        "algorithm=dpo",
        "algorithm.loss=tdpo2",
        "generation.sampler=gshf",
        "generation.sampler_from_iteration=2",
        "eval.benchmarks=[gsm8k,math500]",
        "eval.benchmark_limit=2",
        "eval.benchmarks_every=2",
        f"logging.run_dir={tmp_path}",
        "logging.name=gshf",
    ]
    run_dir = run(load_config(None, overrides))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    with_bench = [r["iteration"] for r in rows if "bench/gsm8k/greedy_accuracy" in r]
    assert with_bench == [0, 2]  # the SFT start and every 2nd iteration
    assert "bench/average/greedy_accuracy" in rows[-1]
    records = [json.loads(line) for line in (run_dir / "iter_2" / "eval" / "math500.jsonl").read_text().splitlines()]
    assert sorted({r["problem_index"] for r in records}) == [0, 1] and len(records) == 2 * (1 + 2)  # greedy + k=2
    for k in (1, 2):
        batch = torch.load(run_dir / f"iter_{k}" / "rollouts.pt", weights_only=False)
        assert batch.group_ids.tolist() == [g for g in range(16) for _ in range(4)]
    # gshf from iteration 2: each prompt's first two samples are the initial (SFT) model's, with the
    # stage's seed, so sampling them again from that model reproduces them exactly.
    initial = load_model(str(run_dir / "sft" / "checkpoint"))
    tokenizer = load_tokenizer(str(run_dir / "sft" / "checkpoint"))
    prompts = [tokenizer.encode(t, add_special_tokens=False) for t in batch.prompt_texts[::4]]
    again = HFGenerator(initial, tokenizer).generate(
        prompts, SamplingParams(n=2, temperature=0.7, max_new_tokens=24, seed=2)
    )
    first_halves = [t for g in range(16) for t in batch.response_texts[4 * g : 4 * g + 2]]
    assert again.response_texts == first_halves
    png, md, table = write_report(run_dir)
    assert png.stat().st_size > 0 and "| SFT |" in table


@pytest.mark.slow
def test_reward_model_in_the_loop_keeps_its_normalisation_across_iterations(tmp_path):
    from itero.models.tiny import build_char_tokenizer, save_tiny
    from itero.models.tiny_rm import build_tiny_reward_model

    tok = build_char_tokenizer()
    save_tiny(tmp_path / "rm", build_tiny_reward_model(tok, hidden_size=32, num_layers=1, seed=3), tok)
    overrides = TINY + [
        "algorithm=dpo",
        "reward.name=model",
        f"reward.model_path={tmp_path / 'rm'}",
        "eval.k=1",
        f"logging.run_dir={tmp_path}",
        "logging.name=rm",
    ]
    run_dir = run(load_config(None, overrides))
    counts = [json.loads((run_dir / f"iter_{k}" / "reward_norm.json").read_text())["count"] for k in (1, 2)]
    # 16 prompts x 4 samples per iteration; the evaluations in between grade with the same object and
    # must not leak into the statistics the next iteration starts from
    assert counts == [64, 128]
    scores = torch.load(run_dir / "iter_1" / "scored.pt", weights_only=False).scores
    assert abs(float(scores.mean())) < 1e-4 and scores.std() > 0.5  # normalised by a batch that counts itself
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "eval/greedy_accuracy" in rows[-1]  # correctness still comes from the math grader


@pytest.mark.slow
def test_an_optimizer_kept_across_iterations_keeps_a_live_learning_rate(tmp_path):
    # one schedule over the run: iteration 2 still trains (a per-iteration cosine would have reached 0)
    overrides = TINY + [
        "algorithm=grpo",
        "training.reset_optimizer_each_iteration=false",
        "training.epochs=1",
        "training.batch_size=16",
        "training.micro_batch_size=16",
        f"logging.run_dir={tmp_path}",
        "logging.name=keep",
    ]
    run_dir = run(load_config(None, overrides))
    first, second = (json.loads((run_dir / f"iter_{k}" / "train.json").read_text()) for k in (1, 2))
    assert first["steps"] > 0 and second["steps"] > 0
    assert second["lr"] > 0.1 * first["lr"]
    state = torch.load(run_dir / "iter_2" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["optimizer"] is not None  # the optimizer state travels with the checkpoint


@pytest.mark.slow
def test_truncated_importance_sampling_weights_are_one_when_the_sampler_is_the_learner(tmp_path):
    # the hf backend samples with the learner's own model, so π_old / π_sampler ≈ 1 on every token;
    # with a vLLM engine the same stage corrects the engine/learner mismatch (capped)
    overrides = TINY + [
        "algorithm=grpo",
        "algorithm.tis_cap=2.0",
        "generation.temperature=0.8",
        "loop.iterations=1",
        f"logging.run_dir={tmp_path}",
        "logging.name=tis",
    ]
    run_dir = run(load_config(None, overrides))
    stats = json.loads((run_dir / "iter_1" / "prepare.json").read_text())
    assert stats["tis_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    batch = torch.load(run_dir / "iter_1" / "prepared.pt", weights_only=False)
    mask = batch.response_mask
    # token-mean weights scaled by w ≈ 1: still summing to 1 over the batch
    assert float(batch.token_weights[mask].sum()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_critic_warmup_trains_the_critic_alone_first(tmp_path):
    # iteration 1 trains the critic only (verl's critic_warmup): the policy it saves is the SFT policy
    # and its critic has left its zero head; iteration 2 trains both, the actor with its own schedule
    overrides = TINY + [
        "algorithm=ppo",
        "algorithm.critic_warmup=1",
        "training.reset_optimizer_each_iteration=false",
        f"logging.run_dir={tmp_path}",
        "logging.name=warm",
    ]
    run_dir = run(load_config(None, overrides))
    weights = {
        name: load_file(run_dir / name / "checkpoint" / "model.safetensors") for name in ("sft", "iter_1", "iter_2")
    }
    assert all(torch.equal(weights["sft"][key], weights["iter_1"][key]) for key in weights["sft"])
    assert any(not torch.equal(weights["iter_1"][key], weights["iter_2"][key]) for key in weights["sft"])
    head = torch.load(run_dir / "iter_1" / "checkpoint" / "value_model" / "value_head.pt", weights_only=True)
    assert float(head["weight"].abs().sum()) > 0
    first, second = (json.loads((run_dir / f"iter_{k}" / "train.json").read_text()) for k in (1, 2))
    assert first["actor_frozen"] == 1.0 and "clip_fraction" not in first and "value_loss" in first
    assert "actor_frozen" not in second and second["clip_fraction"] >= 0 and second["lr"] > 0
    # the actor's one cosine spans the iterations it trains in (here one), so it ends near 0, not halfway
    steps = [json.loads(s) for s in (run_dir / "iter_2" / "train_steps.jsonl").read_text().splitlines()]
    lr = load_config(None, overrides).training.lr
    assert max(s["lr"] for s in steps) > 0.5 * lr and steps[-1]["lr"] < 0.1 * lr
