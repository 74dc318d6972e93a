"""The chat-rule task's gold preference, its noisy proxy data, and a tiny pass of the chat study."""

from __future__ import annotations

import json
import math

import pytest

from itero.evaluation import chat_study
from itero.tasks import chat_rule

PROMPT = chat_rule.prompt(3, 4, form=1)  # "User: Add 3 and 4.\nAssistant:"
CONCISE = " \\boxed{7}"  # 10 characters
PADDED = " Sure! 3+4=7, so \\boxed{7}"  # 26 characters
WRONG = " \\boxed{8}"  # 10 characters
WRONG_PADDED = " Sure! 3+4=8, so \\boxed{8}"  # 26 characters


def test_gold_score_is_the_rule_written_out():
    assert PROMPT == "User: Add 3 and 4.\nAssistant:"
    assert chat_rule.operands(PROMPT) == (3, 4)
    # gold_score = 2·[correct] − min(len, 64) / 64
    assert chat_rule.gold_score(PROMPT, CONCISE) == pytest.approx(2 - 10 / 64)
    assert chat_rule.gold_score(PROMPT, PADDED) == pytest.approx(2 - 26 / 64)
    assert chat_rule.gold_score(PROMPT, WRONG) == pytest.approx(0 - 10 / 64)
    assert chat_rule.gold_score(PROMPT, " " + "x" * 100) == pytest.approx(-1.0)  # no number, capped length


def test_correct_concise_beats_padded_beats_wrong():
    prefer = chat_rule.rule_preference
    assert prefer(PROMPT, CONCISE, PADDED) == 1.0
    assert prefer(PROMPT, PADDED, CONCISE) == 0.0
    assert prefer(PROMPT, PADDED, WRONG) == 1.0  # a correct long answer beats a wrong short one
    assert prefer(PROMPT, WRONG, WRONG_PADDED) == 1.0  # among wrong answers the shorter wins
    assert prefer(PROMPT, CONCISE, " \\boxed{7}") == 0.5
    # the answer is the response's last integer, not the first
    assert chat_rule.is_correct(PROMPT, " 3+4=8, no: \\boxed{7}")
    assert not chat_rule.is_correct(PROMPT, " 3+4=7, so \\boxed{8}")


def test_proxy_labels_are_flipped_at_the_requested_rate():
    rows = chat_rule.preference_rows(3000, seed=3, noise=0.2)
    flipped = [r["flipped"] for r in rows]
    # binomial sd sqrt(0.2·0.8/3000) ≈ 0.007: a margin of 0.03 is four of them
    assert abs(sum(flipped) / len(rows) - 0.2) < 0.03
    # a flipped row is exactly one the rule disagrees with; no pair is a tie
    for r in rows:
        rule = chat_rule.rule_preference(r["prompt"], r["chosen"], r["rejected"])
        assert rule == (0.0 if r["flipped"] else 1.0)
    clean = chat_rule.preference_rows(500, seed=3)
    assert not any(r["flipped"] for r in clean)


def test_sft_solutions_leave_room_to_improve():
    rows = chat_rule.training_rows(1000, seed=0)
    scores = [chat_rule.gold_score(r["prompt"], r["solution"]) for r in rows]
    concise = [chat_rule.gold_score(r["prompt"], chat_rule.concise(int(r["gold_answer"]))) for r in rows]
    wrong = sum(not chat_rule.is_correct(r["prompt"], r["solution"]) for r in rows) / len(rows)
    assert 0.1 < wrong < 0.2  # SFT_MIX: 15 % wrong
    assert sum(concise) / len(rows) - sum(scores) / len(rows) > 0.3  # shorter and righter is worth it


TINY = [
    "model.tiny.hidden_size=16",
    "model.tiny.num_layers=1",
    "model.tiny.intermediate_size=32",
    "task.jsonl.num_test=8",
    "sft.steps=30",
    "sft.batch_size=16",
    "sft.micro_batch_size=16",
    "loop.iterations=1",
    "loop.prompts_per_iteration=8",
    "generation.max_new_tokens=16",
    "training.batch_size=16",
    "training.micro_batch_size=16",
    "training.epochs=1",
    "eval.num_problems=4",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat-data")
    args = chat_study.parser().parse_args(
        ["prepare", str(folder), "--train", "80", "--eval", "8", "--gold-pairs", "320", "--proxy-pairs", "40"]
        + ["--heldout-pairs", "100", "--gold-epochs", "2", "--proxy-epochs", "1", "--rm-hidden", "32"]
        + ["--rm-layers", "1"]
    )
    return folder, chat_study.prepare(args)


def test_gold_rm_orders_heldout_pairs_by_the_rule(data):
    folder, summary = data
    assert abs(summary["proxy_noise_realised"] - 0.2) < 0.2  # 40 pairs: a wide margin
    # chance is 0.5; length alone orders about 0.7 of the pairs, the rule's correctness the rest
    assert summary["gold_heldout_accuracy"] > 0.6
    assert set(summary["by_kind"]["gold_rm"]) == {
        "correct_vs_wrong_concise",
        "correct_vs_wrong_padded",
        "concise_vs_padded",
    }
    assert summary["by_kind"]["gold_rm"]["concise_vs_padded"] > 0.8  # length among correct answers: the easy half
    assert (folder / "gold_rm" / "metrics.json").exists() and (folder / "proxy_rm" / "metrics.json").exists()


def test_study_pass_on_two_presets(data, tmp_path):
    folder, _ = data
    argv = ["run", str(folder), str(tmp_path), "--presets", "dpo,ppo", "--seeds", "0"]
    argv += ["--max-new-tokens", "16", "--kl-samples", "1"]
    for override in TINY:
        argv += ["--set", override]
    assert chat_study.main(argv) == 0
    rows = {r["preset"]: r for r in json.loads((tmp_path / "table.json").read_text())["rows"]}
    assert set(rows) == {"sft", "dpo", "ppo"}
    for row in rows.values():
        for key in ("win_rate", "lc_win_rate", "rule_win_rate", "correct"):
            assert 0.0 <= row[key] <= 1.0
        assert math.isfinite(row["kl"]) and row["kl"] >= 0.0
        assert -1.0 <= row["rule_score"] <= 2.0  # 2·[correct] − min(len, 64)/64
    assert rows["sft"]["kl"] == 0.0  # the start is its own base
    assert rows["dpo"]["iterations"] == 1
    # both runs started from the study's SFT checkpoint rather than training their own
    sft = (tmp_path / "sft-start" / "sft" / "checkpoint" / "model.safetensors").read_bytes()
    for run in ("dpo-s0", "ppo-s0"):
        assert (tmp_path / run / "sft" / "checkpoint" / "model.safetensors").read_bytes() == sft
    assert "| dpo | 1 |" in (tmp_path / "table.md").read_text()
