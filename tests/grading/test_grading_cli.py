"""itero grade sub-command: file grading, malformed input, self-check."""

from __future__ import annotations

import argparse
import json

from itero.grading import cli


def _run(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def test_grades_a_jsonl_file_and_writes_verdicts(tmp_path, capsys):
    rows = [
        {"response": "so $\\boxed{\\frac{1}{2}}$", "gold_answer": "0.5"},
        {"response": "the answer is 7", "gold_answer": "8"},
        {"response": "no answer here", "gold_answer": "1"},
    ]
    path = tmp_path / "rollouts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "verdicts.jsonl"
    assert _run(["--responses", str(path), "--out", str(out)]) == 0
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["correct"] for v in verdicts] == [True, False, False]
    assert verdicts[2]["extracted"] is None
    assert "1/3" in capsys.readouterr().out


def test_custom_fields(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"completion": "\\boxed{3}", "answer": "3"}) + "\n")
    assert _run(["--responses", str(path), "--response-field", "completion", "--gold-field", "answer"]) == 0
    written = path.with_suffix(".verdicts.jsonl").read_text()
    assert json.loads(written)["correct"] is True


def test_malformed_line_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"response": "\\boxed{1}", "gold_answer": "1"}) + "\n{not json\n")
    assert _run(["--responses", str(path)]) == 2
    assert f"{path}:2" in capsys.readouterr().err


def test_missing_field_is_reported(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"response": "\\boxed{1}"}) + "\n")
    assert _run(["--responses", str(path)]) == 2
    assert "gold_answer" in capsys.readouterr().err


def test_check_with_missing_data_dir(tmp_path, capsys):
    assert _run(["--check", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err


def test_extraction_mode_and_explain(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    rows = [{"response": "so the total is 25", "gold_answer": "25"}, {"response": "\\boxed{B+1}", "gold_answer": "B"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert _run(["--responses", str(path)]) == 0
    assert "accuracy 0/2" in capsys.readouterr().out  # strict: an unmarked response has no answer
    assert _run(["--responses", str(path), "--extraction", "lenient", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1/2" in out
    assert "[1] WRONG  rule=choice" in out and "extracted : 'B+1'" in out
    assert "gold      : 'B'" in out
