"""`itero eval` end to end on CPU: a tiny saved model on all six benchmarks (2 problems each), then resume."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from helpers import tiny

from itero.evaluation import cli
from itero.evaluation.benchmarks import BUILTIN
from itero.generation.hf import HFGenerator
from itero.grading import grade
from itero.models.tiny import save_tiny
from itero.tracking.rundir import RunDirError

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} not present")
LIMIT, N, MAX_NEW = 2, 2, 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tokenizer = tiny(seed=3)
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", model, tokenizer)


def _eval(model_dir: Path, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            str(model_dir),
            "--out",
            str(out),
            "--data-dir",
            str(DATA_DIR),
            "--limit",
            str(LIMIT),
            "--n",
            str(N),
            "--temperature",
            "1.0",
            "--max-new-tokens",
            str(MAX_NEW),
            "--template",
            "plain",
            "--no-progress",
            *extra,
        ]
    )
    return cli.run(args)


def _gold_answers(name: str) -> list[str]:
    lines = (DATA_DIR / BUILTIN[name]).read_text(encoding="utf-8").splitlines()[:LIMIT]
    return [json.loads(line)["gold_answer"] for line in lines]


@pytest.fixture
def counted_generate(monkeypatch):
    calls = []
    original = HFGenerator.generate

    def generate(self, prompts, params, **kwargs):
        calls.append(len(prompts))
        return original(self, prompts, params, **kwargs)

    monkeypatch.setattr(HFGenerator, "generate", generate)
    return calls


def test_all_six_benchmarks_end_to_end_then_resume(model_dir, tmp_path, counted_generate):
    out = tmp_path / "run"
    assert _eval(model_dir, out) == 0
    eval_dir = out / "eval"
    assert len(counted_generate) == 6 * 2  # greedy + sampled per benchmark
    results = json.loads((eval_dir / "results.json").read_text())
    for name in BUILTIN:
        rows = [json.loads(line) for line in (eval_dir / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == LIMIT * (1 + N)
        assert sorted((r["mode"], r["problem_index"], r["sample"]) for r in rows) == sorted(
            [("greedy", i, 0) for i in range(LIMIT)] + [("sampled", i, j) for i in range(LIMIT) for j in range(N)]
        )
        golds = _gold_answers(name)
        for r in rows:
            assert r["gold"] == golds[r["problem_index"]]
            verdict = grade(r["response"], r["gold"])  # the stored verdict is the grader's on the stored response
            assert (r["extracted"], r["correct"]) == (verdict.extracted, verdict.correct)
            assert 1 <= r["length"] <= MAX_NEW
            assert not r["truncated"] or r["length"] == MAX_NEW
        metrics = results["benchmarks"][name]
        assert metrics["num_problems"] == LIMIT
        assert metrics["greedy_accuracy"] == sum(r["correct"] for r in rows if r["mode"] == "greedy") / LIMIT
        assert metrics["sampled_response_length"] == sum(r["length"] for r in rows if r["mode"] == "sampled") / (
            LIMIT * N
        )
    average = results["flat"]["bench/average/greedy_truncation_rate"]
    assert average == pytest.approx(sum(results["benchmarks"][b]["greedy_truncation_rate"] for b in BUILTIN) / 6)
    header = (eval_dir / "results.md").read_text().splitlines()[0]
    assert header == "| metric | " + " | ".join(BUILTIN) + " | Average |"

    counted_generate.clear()
    before = {name: (eval_dir / f"{name}.jsonl").read_text() for name in BUILTIN}
    assert _eval(model_dir, out) == 0
    assert counted_generate == []  # nothing finished is generated again
    assert {name: (eval_dir / f"{name}.jsonl").read_text() for name in BUILTIN} == before

    (eval_dir / "aime24.jsonl").unlink()
    assert _eval(model_dir, out) == 0
    assert counted_generate == [LIMIT, LIMIT]  # only aime24, greedy then sampled
    assert (eval_dir / "aime24.jsonl").read_text() == before["aime24"]  # seeded: the same responses again


def test_changed_settings_are_refused_in_the_same_folder(model_dir, tmp_path):
    out = tmp_path / "run"
    assert _eval(model_dir, out, "--benchmarks", "amc23") == 0
    with pytest.raises(RunDirError, match="temperature differ"):
        _eval(model_dir, out, "--benchmarks", "amc23", "--temperature", "0.7")
