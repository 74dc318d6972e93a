"""Model folders are checked before the first write: a damaged or mismatched one is one line naming the
file, and neither `itero train` nor `itero eval` leaves anything behind; suspicious models are warned about."""

import json
import shutil
import time
from pathlib import Path

import pytest
from helpers import tiny

from itero.cli import main
from itero.models.tiny import build_char_tokenizer, build_tiny_model, save_tiny
from itero.models.tiny_rm import build_tiny_reward_model

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
BENCH = b'{"problem": "1+1=", "gold_answer": "2"}\n'


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    model, tok = tiny()
    return save_tiny(tmp_path_factory.mktemp("models") / "good", model, tok)


def truncate_weights(d: Path) -> None:
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def corrupt_config(d: Path) -> None:
    (d / "config.json").write_text('{"model_type": "qwen2", ')


def remove_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def remove_tokenizer(d: Path) -> None:
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").unlink()


def shrink_vocab(d: Path) -> None:  # a model whose embedding has fewer rows than the tokenizer has ids
    tok = build_char_tokenizer()
    model = build_tiny_model(len(tok) - 10, hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2)
    model.save_pretrained(d)


DAMAGE = [  # (how, a fragment of the message)
    (truncate_weights, "model.safetensors cannot be read"),
    (corrupt_config, "config.json cannot be read"),
    (remove_weights, "has no weights"),
    (remove_tokenizer, "has no tokenizer"),
    (shrink_vocab, "the tokenizer has token ids up to"),
]


def run_cli(argv, tmp_path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.jsonl").write_bytes(BENCH)
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("damage, message", DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_damaged_model_folder_is_one_line_and_nothing_is_written(
    command, damage, message, good_model, tmp_path, monkeypatch, capsys
):
    model = tmp_path / "model"
    shutil.copytree(good_model, model)
    damage(model)
    argv = {
        "train": ["train", QUICKSTART, f"model.path={model}", "logging.run_dir=runs"],
        "eval": ["eval", str(model), "--benchmarks", "b=bench.jsonl", "--out", "out"],
    }[command]
    code, err = run_cli(argv, tmp_path, monkeypatch, capsys)
    assert code == 2, err
    assert message in err and err.startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_eval_writes_nothing_until_the_model_loads_so_the_corrected_command_runs(
    good_model, tmp_path, monkeypatch, capsys
):
    broken = tmp_path / "model"
    shutil.copytree(good_model, broken)
    truncate_weights(broken)
    argv = ["eval", str(broken), "--benchmarks", "b=bench.jsonl", "--out", "out", "--template", "plain"]
    code, _ = run_cli([*argv, "--max-new-tokens", "4", "--no-progress"], tmp_path, monkeypatch, capsys)
    assert code == 2 and not (tmp_path / "out").exists()
    shutil.copy(good_model / "model.safetensors", broken / "model.safetensors")  # the fix: same path, good weights
    code, err = run_cli([*argv, "--max-new-tokens", "4", "--no-progress"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "eval" / "settings.json").read_text())["model"] == str(broken)


def test_a_hub_name_offline_fails_at_once_naming_the_remedy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_cli(["eval", "nosuch-org/nosuch-model", "--benchmarks", "b=bench.jsonl", "--out", "out"],
                        tmp_path, monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "HF_HUB_OFFLINE is set" in err and "local folder" in err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_hub_fails_in_seconds_not_after_a_minute_of_retries(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    code, err = run_cli(["train", QUICKSTART, "model.path=nosuch-org/nosuch-model", "logging.run_dir=runs"],
                        tmp_path, monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "cannot be reached" in err and "HF_HUB_OFFLINE=1" in err
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "runs").exists()


def test_a_causal_lm_as_the_reward_model_is_warned_about(good_model, tmp_path, capsys):
    from itero.input_checks import check_reward_model

    check_reward_model(str(good_model), "reward.model_path")
    assert "is a causal LM, not a reward model" in capsys.readouterr().err
    rm = save_tiny(tmp_path / "rm", build_tiny_reward_model(build_char_tokenizer(), hidden_size=32, num_layers=1),
                   build_char_tokenizer())  # fmt: skip
    check_reward_model(str(rm), "reward.model_path")
    assert "warning" not in capsys.readouterr().err


def test_a_prompt_longer_than_the_context_is_refused_and_a_tight_one_warned_about(tmp_path, monkeypatch, capsys):
    rows = [{"problem": "1+1=" * 20, "gold_answer": "2"}] * 8 + [{"problem": "1+1=" * 200, "gold_answer": "2"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = ["task.name=jsonl", "task.jsonl.train_path=p.jsonl", "task.jsonl.num_test=2", "sft.enabled=false"]
    task += ["logging.run_dir=runs"]
    small = ["model.tiny.max_position_embeddings=256", "generation.max_new_tokens=200"]
    code, err = run_cli(["train", QUICKSTART, *task, *small], tmp_path, monkeypatch, capsys)
    assert code == 2 and "p.jsonl: train problem 7 is 800 tokens, the model's context is 256" in err, err
    assert not (tmp_path / "runs").exists()

    from itero.config import load_config
    from itero.runtime import preflight

    rows[-1] = rows[0]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    preflight(load_config(QUICKSTART, [*task, *small]))
    assert "leave less than generation.max_new_tokens=200 of the model's 256-token context" in capsys.readouterr().err


def test_eval_warns_about_benchmark_prompts_past_the_context(good_model, tmp_path, monkeypatch, capsys):
    (tmp_path / "long.jsonl").write_text(json.dumps({"problem": "1+" * 300 + "1=", "gold_answer": "301"}) + "\n")
    argv = ["eval", str(good_model), "--benchmarks", "b=long.jsonl", "--out", "out", "--template", "plain"]
    code, err = run_cli([*argv, "--max-new-tokens", "2", "--no-progress"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert "long.jsonl: 1 of 1 prompts (longest 602 tokens) leave less than --max-new-tokens=2" in err
