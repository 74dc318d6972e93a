"""End to end: a run whose reward is a user function from a Python file, and a run on a local
``datasets`` folder rendered with a chat template, whose extra columns reach the reward function."""

import importlib.util
import json

import pytest
from helpers import TINY_RUN as TINY

from itero.config import load_config
from itero.loop import run
from itero.rewards.functions import format_reward
from itero.tasks.arithmetic import make_splits

USER_FILE = '''
def digits(prompts, responses, answers, **columns):
    """Reward: the share of digits in the response, plus 1 if it contains the gold answer."""
    return [sum(c.isdigit() for c in r) / max(len(r), 1) + float(a in r) for r, a in zip(responses, answers)]


def level(prompts, responses, answers, level, **columns):
    return [float(x) for x in level]
'''

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def rollouts(run_dir):
    return [json.loads(line) for line in (run_dir / "iter_1" / "rollouts.jsonl").read_text().splitlines()]


def load(path, name):
    spec = importlib.util.spec_from_file_location("user_rewards_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.slow
def test_a_run_rewards_with_a_user_function_from_a_python_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE)
    overrides = [f"reward.functions=[{{path: '{path}:digits', weight: 2.0}}, {{name: format, weight: 0.5}}]"]
    run_dir = run(load_config(None, TINY + overrides + [f"logging.run_dir={tmp_path}", "logging.name=fn"]))
    rows = rollouts(run_dir)
    responses, answers = [r["response"] for r in rows], [r["answer"] for r in rows]
    digits = load(path, "digits")([], responses, answers)
    boxed = format_reward([], responses)
    assert [r["reward"] for r in rows] == pytest.approx([2.0 * d + 0.5 * b for d, b in zip(digits, boxed)], abs=1e-6)
    score = json.loads((run_dir / "iter_1" / "score.json").read_text())
    assert score["digits_mean"] == pytest.approx(sum(digits) / len(rows))
    assert score["format_mean"] == pytest.approx(sum(boxed) / len(rows))
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "score/digits_mean" in metrics[-1] and "score/format_mean" in metrics[-1]


@pytest.mark.slow
def test_a_run_on_a_local_datasets_folder_with_a_chat_template(tmp_path):
    datasets = pytest.importorskip("datasets")
    train, test = make_splits(60, 8, digits=1, num_ops=1, ops="+")
    problems = train + test
    folder = tmp_path / "my_dataset"
    datasets.Dataset.from_dict(
        {
            "question": [p.prompt for p in problems],
            "final": [p.answer for p in problems],
            "worked": [p.solution for p in problems],
            "level": [i % 5 for i in range(len(problems))],
            "unused": ["x"] * len(problems),
        }
    ).save_to_disk(str(folder))
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE)
    task = [
        f"task.dataset.path={folder}",
        "task.dataset.prompt_field=question",
        "task.dataset.answer_field=final",
        "task.dataset.solution_field=worked",
        "task.dataset.columns=[level]",
        "task.dataset.num_test=8",
        f"task.dataset.chat_template={json.dumps(CHAT_TEMPLATE)}",
        f"reward.functions=[{{path: '{path}:level'}}]",
    ]
    run_dir = run(load_config(None, TINY + task + [f"logging.run_dir={tmp_path}", "logging.name=ds"]))
    rows = rollouts(run_dir)
    level_of = {p.prompt: i % 5 for i, p in enumerate(problems)}
    answer_of = {p.prompt: p.answer for p in problems}
    for row in rows:
        assert row["prompt"].startswith("<|user|>") and row["prompt"].endswith("\n<|assistant|>")
        question = row["prompt"].removeprefix("<|user|>").removesuffix("\n<|assistant|>")
        assert row["answer"] == answer_of[question]  # the gold answer came from the mapped field
        assert row["reward"] == level_of[question]  # the extra column reached the reward function
    assert (run_dir / "iter_1" / "checkpoint").exists()
