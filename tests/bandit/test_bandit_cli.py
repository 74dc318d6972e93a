import csv

from itero.bandit.cli import main


def test_cli_writes_png_and_csv(tmp_path, capsys):
    code = main(["--setting", "empirical", "--dtype", "both", "--steps", "20", "--out", str(tmp_path),
                 "--samplers", "unif", "mix-p-star"])  # fmt: skip
    assert code == 0
    for dtype in ("float32", "float64"):
        png = tmp_path / f"bandit_empirical_{dtype}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with open(tmp_path / f"bandit_empirical_{dtype}.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 2 * 21  # before each of 20 updates, and after the last
        assert {r["sampler"] for r in rows} == {"DPO-Unif", "DPO-Mix-P*"}
        assert rows[0]["updates"] == "0" and float(rows[0]["param_diff"]) > 1.0
    out = capsys.readouterr().out
    assert "DPO-Mix-P*" in out and "bandit_empirical_float64.png" in out
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_rejects_an_unknown_sampler(tmp_path):
    assert main(["--setting", "exact", "--samplers", "gshf", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())
