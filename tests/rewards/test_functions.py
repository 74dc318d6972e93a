"""reward.functions: loading by path or name, weights, async and verl styles, dataset columns, refusals."""

import math

import pytest

from itero.config import load_config
from itero.errors import IteroError
from itero.rewards.functions import (
    MathFunction,
    RewardFunctionError,
    RewardFunctions,
    RewardTerm,
    format_reward,
    load_from_file,
    load_terms,
)
from itero.rewards.math import MathReward
from itero.runtime import build_reward
from itero.schema import ConfigError

USER_FILE = """
import asyncio

def length(prompts, responses, **columns):
    return [float(len(r)) for r in responses]

async def slow_one(prompts, responses, **columns):
    await asyncio.sleep(0)
    return [1.0] * len(responses)

def difficulty(prompts, responses, answers, level, **columns):
    return [float(lv) for lv in level]

def short(prompts, responses, **columns):
    return [1.0]

def nan(prompts, responses, **columns):
    return [float("nan")] * len(responses)

def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    return {"score": float(solution_str == ground_truth) + extra_info["level"]}

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE)
    return path


def grader():
    return MathFunction(MathReward(1.0, -0.5, -1.0))


def functions(user_file, *entries, columns_of=None):
    cfg = load_config(None, [f"reward.functions={list(entries)}"])
    builtins = {"math": grader(), "format": format_reward}
    return RewardFunctions(load_terms(cfg.reward.functions, builtins), builtins["math"], columns_of)


def test_a_function_loads_from_a_file_path(user_file):
    fn = load_from_file(f"{user_file}:length")
    assert fn(["p"], ["abc"]) == [3.0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("{dir}/missing.py:length", "does not exist"),
        ("{file}:nope", r"has no 'nope' \(callables there: .*length"),
        ("{file}:NOT_A_FUNCTION", "is a int, not a function"),
        ("{file}", "write it as path/to/file.py:function_name"),
    ],
)
def test_a_wrong_path_or_function_is_one_clear_error(user_file, spec, message):
    with pytest.raises(RewardFunctionError, match=message):
        load_from_file(spec.format(dir=user_file.parent, file=user_file))


def test_a_file_that_fails_to_import_says_so(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RewardFunctionError, match="importing .*bad.py failed: RuntimeError: boom"):
        load_from_file(f"{bad}:f")


def test_the_reward_is_the_weighted_sum_and_each_mean_is_logged(user_file):
    r = functions(
        user_file, {"path": f"{user_file}:length", "weight": 0.5}, {"name": "math", "weight": 2.0}, {"name": "format"}
    )
    rewards, correct = r.grade(["\\boxed{4}", "no"], ["4", "4"], prompts=["2+2=", "2+2="])
    # length 9 and 2; math 1 and -1 (no answer); format 1 and 0
    assert rewards == [0.5 * 9 + 2.0 * 1 + 1.0, 0.5 * 2 + 2.0 * -1 + 0.0]
    assert correct == [True, False]
    assert r.last_metrics == {"length_mean": 5.5, "math_mean": 0.0, "format_mean": 0.5}


def test_async_functions_are_awaited(user_file):
    r = functions(user_file, {"path": f"{user_file}:slow_one", "name": "judge"})
    assert r.grade(["a", "b"], ["1", "2"], prompts=["p", "q"])[0] == [1.0, 1.0]
    assert r.last_metrics == {"judge_mean": 1.0}


def test_dataset_columns_reach_the_function(user_file):
    rows = {("p1", "1"): {"level": 3}, ("p2", "2"): {"level": 5}}
    r = functions(user_file, {"path": f"{user_file}:difficulty"}, columns_of=lambda p, a: rows.get((p, a)))
    assert r.grade(["x", "y"], ["1", "2"], prompts=["p1", "p2"])[0] == [3.0, 5.0]


def test_verl_style_compute_score_is_called_per_sample(user_file):
    rows = {("p", "7"): {"level": 0.5}}
    r = functions(
        user_file, {"path": f"{user_file}:compute_score", "style": "verl"}, columns_of=lambda p, a: rows[(p, a)]
    )
    assert r.grade(["7", "8"], ["7", "7"], prompts=["p", "p"])[0] == [1.5, 0.5]


@pytest.mark.parametrize(
    "name, message", [("short", r"'short' returned 1 values for 2 responses"), ("nan", r"'nan' returned nan")]
)
def test_a_wrong_length_or_a_non_finite_value_is_refused(user_file, name, message):
    r = functions(user_file, {"path": f"{user_file}:{name}"})
    with pytest.raises(RewardFunctionError, match=message):
        r.grade(["a", "b"], ["1", "2"], prompts=["p", "q"])


def test_without_prompts_only_correctness_is_graded(user_file):
    r = functions(user_file, {"path": f"{user_file}:short"})  # would be refused if it ran
    rewards, correct = r.grade(["\\boxed{1}"], ["1"])
    assert math.isnan(rewards[0]) and correct == [True]


def test_the_math_and_model_rewards_keep_their_numbers_without_functions():
    cfg = load_config(None, [])
    assert isinstance(build_reward(cfg), MathReward)
    r = build_reward(load_config(None, ["reward.functions=[{name: math}]"]))
    responses, answers = ["\\boxed{3}", "\\boxed{4}", "none"], ["3", "3", "3"]
    assert r.grade(responses, answers, prompts=["", "", ""]) == MathReward().grade(responses, answers)


@pytest.mark.parametrize(
    "entries, message",
    [
        ("[{name: nope}]", "give path: file.py:function, or a built-in name"),
        ("[{name: model}]", r"one \{name: model\} at most, and it needs reward.model_path"),
        ("[{name: math, style: other}]", "style"),
    ],
)
def test_config_refuses_unknown_functions(entries, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"reward.functions={entries}"])


def test_duplicate_names_are_refused(user_file):
    with pytest.raises(RewardFunctionError, match="two functions are named 'length'"):
        functions(user_file, {"path": f"{user_file}:length"}, {"path": f"{user_file}:length"})


def test_a_missing_function_stops_the_run_before_the_run_directory(user_file, tmp_path):
    from itero.runtime import preflight

    cfg = load_config(None, [f"reward.functions=[{{path: '{user_file}:nope'}}]", f"logging.run_dir={tmp_path}/runs"])
    with pytest.raises(IteroError, match="has no 'nope'"):
        preflight(cfg)
    assert not (tmp_path / "runs").exists()


def test_terms_are_plain_data():
    term = RewardTerm("f", format_reward, 0.5)
    assert term.style == "batched" and term.fn([""], ["\\boxed{1}"]) == [1.0]


def test_a_reward_model_is_one_more_function_and_keeps_its_normaliser():
    from helpers import tiny

    from itero.models.tiny_rm import build_tiny_reward_model
    from itero.rewards.functions import ModelFunction
    from itero.rewards.reward_model import RewardModel

    _, tok = tiny()
    model = build_tiny_reward_model(tok, hidden_size=32, num_layers=1, seed=0)
    rm = RewardModel(model, tok, normalize=True, clip=10.0)
    twin = RewardModel(model, tok, normalize=True, clip=10.0)
    r = RewardFunctions([RewardTerm("model", ModelFunction(rm), 0.5)], grader())
    assert r.norm is rm.norm
    prompts, responses = ["1+1=", "2+2=", "3+3="], ["2", "5", "\\boxed{6}"]
    rewards = r.grade(responses, ["2", "4", "6"], prompts=prompts)[0]
    assert rewards == pytest.approx([0.5 * s for s in twin.score(prompts, responses).tolist()])
    assert r.norm.count == 3
