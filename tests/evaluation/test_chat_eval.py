"""``itero eval-chat`` end to end on the toy chat task: an RM trained by ``itero train-rm`` judges a policy."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny

from itero.cli import main
from itero.evaluation import chat_metrics
from itero.evaluation.chat_toy import write_task
from itero.models.tiny import save_tiny


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy task and a reward model trained on its pairs (the right sum wins)."""
    folder = tmp_path_factory.mktemp("chat")
    prompts, prefs = write_task(folder, prompts=24, pairs=800)
    rm = folder / "rm"
    args = ["train-rm", str(prefs), "--base", "tiny", "--out", str(rm), "--epochs", "10", "--lr", "3e-3"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    try:
        assert main([*args, "--batch-size", "16", "--val-fraction", "0.2"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert json.loads((rm / "metrics.json").read_text())["val_accuracy"] >= 0.8
    policy, _ = tiny(seed=0)  # a freshly initialised model: it writes noise, not sums
    base, tok = tiny(seed=1)
    return folder, prompts, rm, save_tiny(folder / "policy", policy, tok), save_tiny(folder / "base", base, tok)


def eval_chat(*extra: str) -> int:
    return main(["eval-chat", "--max-new-tokens", "8", "--threads", "1", "--no-progress", *extra])


def test_the_rm_judge_prefers_the_right_answers_and_the_summary_is_the_per_response_file(toy, tmp_path):
    folder, prompts, rm, policy, base = toy
    out = tmp_path / "eval"
    rc = eval_chat(
        *("--policy", str(policy), "--prompts", str(prompts), "--reference-field", "reference"),
        *("--judge", f"rm:{rm}", "--reward-model", str(rm), "--base", str(base)),
        *("--n", "2", "--temperature", "1", "--out", str(out)),
    )
    assert rc == 0
    report = json.loads((out / "chat_eval.json").read_text())
    pairs = [json.loads(line) for line in (out / "chat_eval.jsonl").read_text().splitlines()]
    assert len(pairs) == report["num_pairs"] == 48 and report["num_prompts"] == 24

    prefs = [p["preference"] for p in pairs]
    groups = [p["prompt_index"] for p in pairs]
    raw = chat_metrics.win_rate(prefs, groups)
    lc = chat_metrics.length_controlled(prefs, [len(p["policy"]) - len(p["reference"]) for p in pairs], groups)
    reward, reward_se = chat_metrics.mean_and_stderr([p["reward"] for p in pairs], groups)
    assert report["win_rate"] == pytest.approx(raw.win_rate) and report["win_rate_stderr"] == pytest.approx(raw.stderr)
    assert report["lc_win_rate"] == pytest.approx(lc.win_rate)
    assert report["lc_win_rate_stderr"] == pytest.approx(lc.stderr)
    assert report["mean_reward"] == pytest.approx(reward) and report["mean_reward_stderr"] == pytest.approx(reward_se)
    for p in pairs:  # the verdicts are the RM's scores compared
        assert p["preference"] == chat_metrics.preference_from_scores(p["policy_score"], p["reference_score"])
        assert p["reward"] == p["policy_score"]

    assert report["win_rate"] < 0.25  # the right sums beat noise
    assert report["reference_mean_reward"] > report["mean_reward"]
    assert report["kl"]["mean"] > 0 and report["metrics"]["chat/kl"] == report["kl"]["mean"]
    assert report["metrics"]["chat/mean_reward"] == report["mean_reward"]


def test_the_reference_against_itself_is_all_ties(toy, tmp_path):
    folder, prompts, rm, policy, base = toy
    out = tmp_path / "self"
    rc = eval_chat(
        *("--policy", str(policy), "--reference-model", str(policy), "--prompts", str(prompts)),
        *("--judge", f"rm:{rm}", "--limit", "6", "--out", str(out)),
    )
    assert rc == 0
    report = json.loads((out / "chat_eval.json").read_text())
    # greedy decoding of the same model: identical responses, equal scores, every pair a tie
    assert report["ties"] == 6 and report["win_rate"] == 0.5 and report["lc_win_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--judge", "openai:m"), "needs --base-url"),
        (("--judge", "gpt4"), "give rm:PATH or openai:MODEL"),
        (("--judge", "openai:m", "--base-url", "localhost:8000"), "--base-url"),
        (("--judge", "rm:/nonexistent/rm"), "does not exist"),
        (("--judge", "rm:RM", "--n", "3"), "--temperature 0"),
        (("--judge", "rm:RM", "--prompt-field", "question"), "missing field 'question'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(toy, tmp_path, capsys, extra, message):
    folder, prompts, rm, policy, base = toy
    extra = tuple(f"rm:{rm}" if e == "rm:RM" else e for e in extra)
    out = tmp_path / "bad"
    args = ["--policy", str(policy), "--prompts", str(prompts), "--reference-field", "reference", "--out", str(out)]
    assert eval_chat(*args, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()
