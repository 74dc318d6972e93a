"""Named prompt templates render exactly as their sources write them; user templates by file or string."""

from __future__ import annotations

import pytest

from itero.evaluation.runner import cut_at_stop
from itero.evaluation.templates import load_template, named_templates
from itero.models.tiny import build_char_tokenizer
from itero.schema import ConfigError

PROBLEM = "What is $1+1$?"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def tokenizer():
    return build_char_tokenizer()


def test_the_five_named_templates_ship():
    assert set(named_templates()) == {"qwen25-math-cot", "online-dpo-r1", "vineppo-math", "gsm8k-fewshot", "plain"}


def test_qwen25_math_cot():
    expected = (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert load_template("qwen25-math-cot").render(PROBLEM) == expected


def test_vineppo_math_and_its_stop():
    template = load_template("vineppo-math")
    assert template.render(PROBLEM) == f"[MATH_TASK] Problem:\n{PROBLEM}\n\nSolution:"
    assert template.stop == ("\n\n\nProblem:",)


def test_plain(tokenizer):
    template = load_template("plain")
    assert template.render(PROBLEM) == PROBLEM
    assert template.encode(PROBLEM, tokenizer) == tokenizer.encode(PROBLEM, add_special_tokens=False)


def test_online_dpo_r1_goes_through_the_chat_template(tokenizer):
    message = f"{PROBLEM} Let's think step by step and output the final answer within \\boxed{{}}"
    template = load_template("online-dpo-r1")
    assert template.chat
    assert template.render(PROBLEM, tokenizer) == message + "\n"  # no chat template: the plain fallback
    tokenizer.chat_template = CHATML
    rendered = template.render(PROBLEM, tokenizer)
    assert rendered == f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(template.encode(PROBLEM, tokenizer)) == rendered


def test_gsm8k_fewshot_is_worked_examples_then_the_question():
    template = load_template("gsm8k-fewshot")
    text = template.render(PROBLEM)
    examples = text.split("\n\n")
    assert len(examples) >= 5
    for example in examples[:-1]:
        question, answer = example.split("\nAnswer: ")
        assert question.startswith("Question: ") and PROBLEM not in question
        assert "The answer is " in answer and answer.endswith(".")
    assert examples[-1] == f"Question: {PROBLEM}\nAnswer:"
    # The model would go on with the next "Question:"; that is where its response ends.
    assert (
        cut_at_stop(" 1 + 1 = 2. The answer is 2.\n\nQuestion: How many", template.stop)
        == " 1 + 1 = 2. The answer is 2.\n\n"
    )


def test_user_templates_from_string_file_and_chat(tmp_path, tokenizer):
    assert load_template("Q: {problem}\nA:").render("2+2") == "Q: 2+2\nA:"
    path = tmp_path / "mine.txt"
    path.write_text("Problem: {problem}\nSolution:\n")  # the file's final newline is not part of it
    assert load_template(str(path)).render("2+2") == "Problem: 2+2\nSolution:"
    chat_file = tmp_path / "mine.chat.txt"
    chat_file.write_text("Solve {problem}\n")
    tokenizer.chat_template = CHATML
    assert (
        load_template(str(chat_file)).render("2+2", tokenizer)
        == "<|im_start|>user\nSolve 2+2<|im_end|>\n<|im_start|>assistant\n"
    )
    assert (
        load_template("chat:Solve {problem}").render("2+2", tokenizer)
        == "<|im_start|>user\nSolve 2+2<|im_end|>\n<|im_start|>assistant\n"
    )
    assert load_template("plain", stop=("END",)).stop == ("END",)


def test_a_problem_that_contains_the_slot_is_not_substituted_again():
    assert load_template("Q: {problem} A:").render("say {problem}") == "Q: say {problem} A:"


def test_bad_templates_say_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match="not a named template .*qwen25-math-cot"):
        load_template("qwen-math")
    path = tmp_path / "noslot.txt"
    path.write_text("Solve it.\n")
    with pytest.raises(ConfigError, match="no \\{problem\\} slot"):
        load_template(str(path))
