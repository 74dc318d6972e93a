"""``itero compare --x kl``: chat metrics of eval-chat results drawn against their KL, one curve per run."""

from __future__ import annotations

import json

from itero.cli import main


def write_result(folder, kl, reward, with_kl=True):
    folder.mkdir(parents=True)
    metrics = {"chat/mean_reward": reward, "chat/mean_reward_stderr": 0.1, "chat/win_rate": 0.5}
    if with_kl:
        metrics |= {"chat/kl": kl, "chat/kl_stderr": 0.01}
    (folder / "chat_eval.json").write_text(json.dumps({"metrics": metrics}))


def test_reward_against_kl_across_runs(tmp_path, capsys):
    for name, points in {"rto": [(2.0, 1.5), (0.5, 0.7)], "ppo": [(1.0, 0.9)]}.items():
        for i, (kl, reward) in enumerate(points):
            write_result(tmp_path / name / "chat" / f"iter_{i}", kl, reward)
    out = tmp_path / "reward_kl"
    args = ["compare", str(tmp_path / "rto"), str(tmp_path / "ppo"), "--x", "kl", "--metric", "chat/mean_reward"]
    assert main([*args, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| rto") or line.startswith("| ppo")]
    assert rows == [
        "| rto | chat/iter_1 | 0.5 ± 0.01 | 0.7 ± 0.1 |",  # in order of KL
        "| rto | chat/iter_0 | 2 ± 0.01 | 1.5 ± 0.1 |",
        "| ppo | chat/iter_0 | 1 ± 0.01 | 0.9 ± 0.1 |",
    ]
    assert out.with_suffix(".png").exists() and out.with_suffix(".md").exists()


def test_a_result_without_kl_is_one_line(tmp_path, capsys):
    write_result(tmp_path / "run", 0.0, 1.0, with_kl=False)
    assert main(["compare", str(tmp_path / "run"), "--x", "kl", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no KL" in err and "--base" in err and "\n" not in err
    assert not (tmp_path / "c.png").exists()
