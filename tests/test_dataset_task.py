"""task.dataset: a local datasets folder, the field mapping, kept columns and the chat template."""

import json

import pytest

from itero.config import load_config
from itero.models.tiny import build_char_tokenizer
from itero.runtime import checked_task
from itero.schema import ConfigError
from itero.tasks import ChatTemplateError, build_task
from itero.tasks.jsonl import DataFileError

datasets = pytest.importorskip("datasets")

TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[a]{% endif %}"
)


@pytest.fixture
def folder(tmp_path):
    rows = {"q": [f"{i}+1=" for i in range(10)], "gold": [str(i + 1) for i in range(10)], "level": list(range(10))}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    return tmp_path / "ds"


def task_config(folder, *extra):
    base = [f"task.dataset.path={folder}", "task.dataset.prompt_field=q", "task.dataset.answer_field=gold"]
    return load_config(None, [*base, "task.dataset.num_test=2", "sft.enabled=false", *extra])


def test_the_field_mapping_and_kept_columns(folder):
    task = build_task(task_config(folder, "task.dataset.columns=[level]").task)
    assert [p.prompt for p in task.test] == ["0+1=", "1+1="] and len(task.train) == 8
    assert task.train[0].answer == "3" and task.train[0].columns == {"level": 2}
    every = build_task(task_config(folder).task)
    assert set(every.train[0].columns) == {"q", "gold", "level"}


def test_a_chat_template_renders_through_the_tokenizer(folder):
    task = checked_task(
        task_config(folder, f"task.dataset.chat_template={json.dumps(TEMPLATE)}", "task.dataset.system_prompt=S")
    )
    assert task.render(task.train[0]) == "[system]S[user]2+1=[a]"
    index = task.columns_index()
    assert index("[system]S[user]2+1=[a]", "3")["level"] == 2 and index("nope", "3") is None


def test_a_tokenizer_without_a_chat_template_is_refused(folder):
    with pytest.raises(ChatTemplateError, match="has no chat template"):
        checked_task(task_config(folder, "task.dataset.chat_template=true"))
    tok = build_char_tokenizer()
    tok.chat_template = TEMPLATE
    task = build_task(task_config(folder, "task.dataset.chat_template=true").task)
    task.bind(tok)
    assert task.render(task.test[0]) == "[user]0+1=[a]"


@pytest.mark.parametrize(
    "extra, message",
    [
        ("task.dataset.columns=[nope]", "columns names 'nope', which the dataset lacks"),
        ("task.dataset.answer_field=missing", "missing field 'missing'"),
    ],
)
def test_a_wrong_mapping_is_one_clear_error(folder, extra, message):
    with pytest.raises(DataFileError, match=message):
        build_task(task_config(folder, extra).task)


def test_a_column_named_like_a_reward_argument_is_refused(tmp_path):
    datasets.Dataset.from_dict({"problem": ["1+1="], "gold_answer": ["2"], "answers": ["x"]}).save_to_disk(
        str(tmp_path / "ds")
    )
    with pytest.raises(DataFileError, match="column 'answers' has the name of a reward function argument"):
        build_task(load_config(None, [f"task.dataset.path={tmp_path / 'ds'}", "task.dataset.num_test=1"]).task)


def test_a_dataset_section_without_a_name_selects_it_and_needs_a_path():
    assert load_config(None, ["task.dataset.path=x"]).task.name == "dataset"
    with pytest.raises(ConfigError, match="task.name=dataset needs task.dataset.path"):
        load_config(None, ["task.name=dataset"])
