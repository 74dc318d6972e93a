"""The benchmark runner with a scripted generator: metrics, resume, crashes, bad data, the loop hook."""

from __future__ import annotations

import json

import pytest
import torch

from itero.batch import RolloutBatch
from itero.cli import main as itero_main
from itero.config import EvalConfig, load_config
from itero.evaluation.runner import EvalSettings, check_folder, evaluate_benchmarks, prepare, run_benchmarks
from itero.models.tiny import build_char_tokenizer
from itero.schema import ConfigError
from itero.tracking.rundir import RunDirError

GOLDS = ["1", "2", "3", "4"]


class ScriptedGenerator:
    """Greedy: right for golds 1 and 2. Sample j of gold g: right (as "g", then "g.0") when j < g, else 9."""

    def __init__(self, tokenizer, fail_on_call=None):
        self.tokenizer, self.calls, self.fail_on_call = tokenizer, 0, fail_on_call

    def generate(self, prompts, params, *, prompt_texts=None, answers=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("generation crashed")
        texts = [self.say(gold, j, params) for gold in answers for j in range(params.n)]
        ids = [self.tokenizer.encode(t, add_special_tokens=False)[: params.max_new_tokens] for t in texts]
        width = max(len(i) for i in ids)
        response_ids = torch.tensor([i + [0] * (width - len(i)) for i in ids])
        lengths = torch.tensor([len(i) for i in ids])
        return RolloutBatch(
            prompt_ids=torch.ones(len(ids), 1, dtype=torch.long),
            prompt_mask=torch.ones(len(ids), 1, dtype=torch.bool),
            response_ids=response_ids,
            response_mask=torch.arange(width)[None] < lengths[:, None],
            group_ids=torch.arange(len(prompts)).repeat_interleave(params.n),
            truncated=lengths >= params.max_new_tokens,
            response_texts=[self.tokenizer.decode(i) for i in ids],
            answers=[a for a in answers for _ in range(params.n)],
        )

    @staticmethod
    def say(gold, j, params):
        if params.temperature == 0:
            return f"so \\boxed{{{gold if gold in ('1', '2') else '0'}}}"
        right = j < int(gold)
        return f"\\boxed{{{(gold if j % 2 == 0 else gold + '.0') if right else '9'}}}"


@pytest.fixture
def bench_file(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps({"q": f"problem {g}", "a": g}) + "\n" for g in GOLDS))
    return path


def _run(generator, bench_file, eval_dir, n=4, names=("toy",)):
    settings = EvalSettings(n=n, temperature=1.0, max_new_tokens=32, template="plain", chunk=3)
    template, benches = prepare([f"{name}={bench_file}:q:a" for name in names], settings)
    return run_benchmarks(generator, build_char_tokenizer(), template, benches, settings, eval_dir, show_progress=False)


def test_metrics_of_a_scripted_model(tmp_path, bench_file):
    results = _run(ScriptedGenerator(build_char_tokenizer()), bench_file, tmp_path / "eval")
    m = results["toy"]
    assert m["greedy_accuracy"] == 0.5
    assert m["mean_accuracy@4"] == pytest.approx(10 / 16)
    assert m["pass@1"] == pytest.approx(10 / 16)
    assert m["pass@2"] == pytest.approx((0.5 + 5 / 6 + 1 + 1) / 4)  # 1 - C(4-c,2)/C(4,2) for c = 1..4
    assert m["pass@4"] == 1.0
    # gold 1 votes 9 (3 to 1); gold 2 ties "2"/"2.0" against 9, 9 and wins only because 2 and 2.0 are one answer
    assert m["maj@4"] == 0.75
    rows = [json.loads(line) for line in (tmp_path / "eval" / "toy.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * (1 + 4)
    assert {(r["problem_index"], r["gold"]) for r in rows} == set(enumerate(GOLDS))
    assert all(r["correct"] == (r["extracted"] is not None and float(r["extracted"]) == float(r["gold"])) for r in rows)
    table = (tmp_path / "eval" / "results.md").read_text()
    assert table.startswith("| metric | toy | Average |") and "| maj@4 | 75.0 | 75.0 |" in table


def test_a_finished_benchmark_is_not_redone(tmp_path, bench_file):
    tok = build_char_tokenizer()
    first = ScriptedGenerator(tok)
    before = _run(first, bench_file, tmp_path / "eval", names=("a", "b"))
    assert first.calls == 2 * 2 * 2  # 2 benchmarks x (greedy, sampled) x 2 chunks of 3 prompts
    again = ScriptedGenerator(tok)
    assert _run(again, bench_file, tmp_path / "eval", names=("a", "b")) == before
    assert again.calls == 0
    (tmp_path / "eval" / "b.jsonl").unlink()
    third = ScriptedGenerator(tok)
    _run(third, bench_file, tmp_path / "eval", names=("a", "b"))
    assert third.calls == 4  # only b


def test_a_crash_leaves_nothing_partial_marked_finished(tmp_path, bench_file):
    tok = build_char_tokenizer()
    with pytest.raises(RuntimeError, match="crashed"):
        _run(ScriptedGenerator(tok, fail_on_call=6), bench_file, tmp_path / "eval", names=("a", "b"))
    assert (tmp_path / "eval" / "a.jsonl").exists()
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["a.jsonl"]  # no b.jsonl, no temporary file
    resumed = ScriptedGenerator(tok)
    _run(resumed, bench_file, tmp_path / "eval", names=("a", "b"))
    assert resumed.calls == 4


def test_bad_benchmark_file_stops_before_the_model_and_marks_nothing(tmp_path, bench_file, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "fine", "a": "1"}) + "\n" + json.dumps({"q": "no answer"}) + "\n")
    out = tmp_path / "out"
    code = itero_main(
        [
            "eval",
            str(tmp_path / "no-such-model"),
            "--benchmarks",
            f"toy={bench_file}:q:a,bad={bad}:q:a",
            "--out",
            str(out),
            "--template",
            "plain",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:2:" in err and "'a'" in err
    assert not list(out.rglob("*.jsonl"))


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    record = {"model": "m", **EvalSettings(n=4).record()}
    check_folder(tmp_path, record)
    check_folder(tmp_path, record)  # the same settings: resume
    with pytest.raises(RunDirError, match="n differ"):
        check_folder(tmp_path, {"model": "m", **EvalSettings(n=8).record()})


def test_loop_hook_returns_flat_metrics(tmp_path, bench_file):
    cfg = EvalConfig(k=4, temperature=1.0, template="plain", benchmarks=[f"toy={bench_file}:q:a"], benchmark_limit=2)
    metrics = evaluate_benchmarks(
        ScriptedGenerator(build_char_tokenizer()),
        build_char_tokenizer(),
        cfg.benchmarks,
        cfg,
        tmp_path,
        max_new_tokens=32,
        show_progress=False,
    )
    assert metrics["bench/toy/num_problems"] == 2
    assert metrics["bench/toy/greedy_accuracy"] == 1.0  # golds 1 and 2 only
    assert metrics["bench/average/pass@4"] == 1.0
    assert (tmp_path / "eval" / "toy.jsonl").exists()


def test_config_checks_benchmark_names_and_template_up_front():
    with pytest.raises(ConfigError, match="unknown benchmark 'math5000'"):
        load_config(None, ["eval.benchmarks=[math500,math5000]"])
    with pytest.raises(ConfigError, match="not a named template"):
        load_config(None, ["eval.benchmarks=[math500]", "eval.template=qwen"])
    assert load_config(None, []).eval.benchmarks == []  # off by default
