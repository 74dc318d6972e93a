"""``itero train-rm`` end to end on a tiny model, and its handling of bad data."""

import json
import math
import random
from pathlib import Path

import pytest

from itero.cli import main
from itero.rewards.cli import evaluate, read_preference_pairs, split
from itero.rewards.reward_model import RewardModel
from itero.tasks.jsonl import DataFileError


def sum_pairs(n: int, seed: int = 0, hi: int = 5) -> list[dict]:
    """Chosen = the right sum of two digits, rejected = a wrong one: a rule the RM must read the prompt to learn."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(hi), rng.randrange(hi)
        wrong = rng.choice([s for s in range(2 * hi - 1) if s != a + b])
        rows.append({"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(wrong)})
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_train_rm_learns_the_sum_rule_and_the_saved_folder_reproduces_its_metrics(tmp_path, capsys):
    data = write_jsonl(tmp_path / "prefs.jsonl", sum_pairs(400))
    out = tmp_path / "rm"
    rc = main(
        [
            "train-rm",
            str(data),
            "--base",
            "tiny",
            "--out",
            str(out),
            "--epochs",
            "6",
            "--lr",
            "3e-3",
            "--batch-size",
            "16",
            "--val-fraction",
            "0.25",
            "--seed",
            "0",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_pairs"] == 100 and metrics["train_pairs"] == 300
    assert metrics["val_accuracy"] >= 0.8  # chance is 0.5; observed 0.94 (seeds 0..2: 0.88-0.95)
    first, last = metrics["epochs"][0]["val"], metrics["epochs"][-1]["val"]
    assert last["loss"] < min(first["loss"], math.log(2))  # below the loss of a constant score
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl", "rm"]  # no temporary folder left

    # Reloaded through from_pretrained, the model gives exactly the validation accuracy it was saved with.
    rm = RewardModel.from_pretrained(out, batch_size=64)
    pairs = read_preference_pairs(data, "prompt", "chosen", "rejected")
    _, val = split(pairs, 0.25, seed=0)
    reloaded = evaluate(rm.model, rm.tokenizer, val, 64, None)
    assert reloaded["accuracy"] == metrics["val_accuracy"]
    assert reloaded["loss"] == pytest.approx(metrics["epochs"][-1]["val"]["loss"], abs=1e-5)

    # Fresh pairs it never saw, scored through the RL-facing interface: the right sum still wins.
    fresh = sum_pairs(200, seed=123)
    chosen = rm.raw_scores([r["prompt"] for r in fresh], [r["chosen"] for r in fresh])
    rejected = rm.raw_scores([r["prompt"] for r in fresh], [r["rejected"] for r in fresh])
    assert (chosen > rejected).float().mean() >= 0.8


BAD = {
    "malformed": (
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, '{"prompt": "a", "chosen": '],
        ":2: malformed JSON",
    ),
    "missing": (
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, "", {"prompt": "a", "rejected": "c"}],
        ":3: missing field 'chosen'",
    ),
    "not_a_string": (
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, "", "", {"prompt": "a", "chosen": ["b"], "rejected": "c"}],
        ":4: field 'chosen' must be a string",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_names_file_line_field_and_writes_nothing(tmp_path, capsys, case):
    rows, message = BAD[case]
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    rc = main(["train-rm", str(data), "--base", "tiny", "--out", str(tmp_path / "rm")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{data}{message}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_field_names_are_configurable(tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", [{"q": "1+1=", "good": "2", "bad": "3", "extra": 1}])
    assert read_preference_pairs(data, "q", "good", "bad") == [("1+1=2", "1+1=3")]
    with pytest.raises(DataFileError, match=r"p.jsonl:1: missing field 'prompt'"):
        read_preference_pairs(data, "prompt", "good", "bad")


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
    data = write_jsonl(tmp_path / "prefs.jsonl", sum_pairs(4))
    out = tmp_path / "rm"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["train-rm", str(data), "--base", "tiny", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").exists()


def test_split_holds_out_at_least_one_pair_and_is_deterministic():
    pairs = [(str(i), str(-i)) for i in range(10)]
    train, val = split(pairs, 0.25, seed=3)
    assert len(val) == 2 and len(train) == 8 and sorted(train + val) == sorted(pairs)
    assert split(pairs, 0.25, seed=3) == (train, val)
    assert len(split(pairs, 0.01, seed=0)[1]) == 1 and split(pairs, 0.0, seed=0)[1] == []


def test_base_causal_lm_folder_gets_a_one_label_head(tmp_path, capsys):
    from itero.models.tiny import build_char_tokenizer, build_tiny_model, save_tiny

    tok = build_char_tokenizer()
    save_tiny(
        tmp_path / "lm",
        build_tiny_model(len(tok), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
        tok,
    )
    data = write_jsonl(tmp_path / "prefs.jsonl", sum_pairs(8))
    rc = main(["train-rm", str(data), "--base", str(tmp_path / "lm"), "--out", str(tmp_path / "rm"), "--lr", "1e-3"])
    assert rc == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForSequenceClassification"] and config["pad_token_id"] == tok.pad_token_id
    rm = RewardModel.from_pretrained(tmp_path / "rm")
    assert rm.raw_scores(["1+1="], ["2"]).shape == (1,)


def test_a_diverging_reward_model_stops_before_anything_is_saved(tmp_path, capsys):
    data = write_jsonl(tmp_path / "prefs.jsonl", sum_pairs(40))
    out = tmp_path / "rm"
    assert main(["train-rm", str(data), "--base", "tiny", "--out", str(out), "--lr", "1e10", "--batch-size", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train-rm diverged: non-finite") and "lower --lr (now 10000000000.0)" in err
    assert not out.exists()  # no all-NaN reward model on disk
