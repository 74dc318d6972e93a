"""Bad input, as a new user or a hostile file gives it: exit code 2, a message naming what to change,
and nothing written (the corrected command is never blocked by a half-started run)."""

import json
from pathlib import Path

import pytest

from itero.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
FILES = {
    "nonutf8.yaml": b"\xff\xfe model: {}",
    "empty.yaml": b"",
    "empty.jsonl": b"",
    "nosolutions.jsonl": b"".join(
        json.dumps({"problem": f"{i}+1=", "gold_answer": str(i + 1)}).encode() + b"\n" for i in range(30)
    ),
    "responses.jsonl": b'{"response": "\\\\boxed{2}", "gold_answer": "2"}\n',
    "prefs.jsonl": b'{"prompt": "1+1=", "chosen": "2", "rejected": "3"}\n',
    "long.jsonl": b'{"problem": "' + b"1+" * 600_000 + b'1=", "gold_answer": "2"}\n',
    "bench.jsonl": b'{"problem": "1+1=", "gold_answer": "2"}\n',
}
JSONL_TASK = ["task.name=jsonl", "task.jsonl.num_test=5"]

CASES = [  # (argv, a fragment of the message)
    (["train", "."], "is not a file"),
    (["train", "nonutf8.yaml"], "not UTF-8 text"),
    (["train", "empty.yaml"], "is empty"),
    (["train", QUICKSTART, "logging.name=../../x"], "plain folder name"),
    (["train", QUICKSTART, "logging.name="], "plain folder name"),
    (["train", QUICKSTART, "training.lr=.inf"], "training.lr: got inf: Input should be a finite number"),
    (["train", QUICKSTART, "reward.wrong=.nan"], "reward.wrong: got nan"),
    (["train", QUICKSTART, "task.arithmetic.ops=/"], "use characters from '+-*'"),
    (["train", QUICKSTART, "task.arithmetic.digits=1", "task.arithmetic.num_ops=1"], "one operator per operation"),
    (["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=empty.jsonl"], "has no training problems"),
    (["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=nosolutions.jsonl"], "no worked solutions"),
    (["train", QUICKSTART, "--threads", "-1"], "argument --threads: expected a number >= 1"),
    (
        ["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=nosolutions.jsonl", "task.jsonl.template=Solve"],
        "{prompt}",
    ),
    (["train", QUICKSTART, "sft.steps=0"], "sft.steps: got 0"),
    (["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=."], "is a folder, not a JSON Lines file"),
    (["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=nonutf8.yaml"], "nonutf8.yaml: not UTF-8 text"),
    (["eval", "some/model", "--benchmarks", "mine=."], "is a folder, not a JSON Lines file"),
    (["grade", "--responses", "responses.jsonl", "--response-field", "respnse"], "missing field 'respnse'"),
    (["grade", "--responses", "responses.jsonl", "--timeout", "-1"], "argument --timeout"),
    (["grade", "--responses", "."], "is a folder, not a JSON Lines file"),
    (["train-rm", "prefs.jsonl", "--base", "tiny", "--out", "responses.jsonl"], "is a file"),
    (["train-rm", "prefs.jsonl", "--base", "tiny", "--out", "rm", "--lr", "-1"], "argument --lr"),
    (["eval", "some/model", "--limit", "0"], "argument --limit"),
    (["train", QUICKSTART, "training.lr=null"], "null is not allowed for training.lr"),
    (["train", QUICKSTART, *JSONL_TASK, "task.jsonl.train_path=long.jsonl"], "long.jsonl:1: line longer than"),
    (["train", QUICKSTART, "logging.run_dir=responses.jsonl/runs"], "responses.jsonl is a file, not a folder"),
    (["eval", "some/model", "--benchmarks", "b=bench.jsonl", "--out", "bench.jsonl/o"], "is a file, not a folder"),
    (["eval", "some/model", "--benchmarks", "b=long.jsonl"], "long.jsonl:1: line longer than"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:1] + a[-2:])[-60:] for a, _ in CASES])
def test_bad_input_exits_2_with_its_message_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert err.lstrip().startswith(("error:", "usage:")) and "Traceback" not in err  # a message, not a traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no verdicts, no model folder


def test_yaml_words_stay_words_on_the_command_line():
    from itero.config import load_config

    assert load_config(None, ["task.jsonl.template=Q: {prompt} A:"]).task.jsonl.template == "Q: {prompt} A:"
    assert load_config(None, ["logging.name=no"]).logging.name == "no"  # YAML 1.1 would read False
    assert load_config(None, ["logging.progress=no"]).logging.progress is False  # a bool field still parses it
