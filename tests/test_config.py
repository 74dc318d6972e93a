from pathlib import Path

import pytest
import torch
import yaml

from itero.cli import main
from itero.config import Config, dump_config, load_config, upgraded_config_text
from itero.schema import ConfigError
from itero.tracking.rundir import (
    RunDirError,
    atomic_torch_save,
    config_differences,
    config_sha,
    load_stage,
    prepare_run_dir,
    read_json,
)

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_yaml_is_the_default_config():
    # `itero quickstart` runs the defaults; the YAML users read must say the same thing
    assert load_config(ROOT / "configs" / "quickstart.yaml") == Config()


def test_an_algorithm_section_without_a_name_keeps_the_quickstart_algorithm():
    cfg = load_config(None, ["algorithm.beta=0.2"])
    assert (cfg.algorithm.name, cfg.algorithm.loss, cfg.algorithm.beta) == ("dpo", "dpop", 0.2)
    assert load_config(None, ["algorithm=dpo"]).algorithm.loss == "sigmoid"  # named: the algorithm's own defaults
    with pytest.raises(ConfigError, match="unknown key 'algorithm.threshold'.*allowed here: .*dpop_lambda"):
        load_config(None, ["algorithm.threshold=0.3"])  # a RAFT key without algorithm=raft


def test_dotted_overrides_are_typed():
    cfg = load_config(None, ["algorithm=dpo", "algorithm.beta=0.2", "loop.iterations=5", "generation.temperature=0.5"])
    assert cfg.algorithm.beta == 0.2 and cfg.loop.iterations == 5 and cfg.generation.temperature == 0.5


def test_algorithm_switch_takes_the_variant_defaults():
    cfg = load_config(None, ["algorithm=raft", "algorithm.max_per_prompt=3"])
    assert cfg.algorithm.name == "raft" and cfg.algorithm.max_per_prompt == 3 and cfg.algorithm.threshold == 1.0


def test_reward_presets():
    reward = load_config(None, ["reward.preset=vineppo"]).reward.model_dump()
    assert {k: reward[k] for k in ("name", "correct", "wrong", "no_answer")} == {
        "name": "math",
        "correct": 1.0,
        "wrong": 0.0,
        "no_answer": 0.0,
    }
    assert load_config(None, ["reward.preset=online-dpo-r1", "reward.wrong=0"]).reward.no_answer == -1.0


@pytest.mark.parametrize(
    "override, words",
    [
        (["algorithm=dpo", "algorithm.betta=0.2"], ["algorithm.betta", "did you mean 'beta'"]),
        (["algorithm.threshold=0.3"], ["algorithm.threshold", "allowed here", "dpop_lambda"]),  # the default is DPO
        (["trainig.lr=1"], ["trainig", "did you mean 'training'"]),
        (["training.lr=abc"], ["training.lr", "'abc'", "number"]),
        (["algorithm=dpo", "generation.n_samples_per_prompt=1"], ["generation.n_samples_per_prompt=1", "at least 2"]),
        (["algorithm=ppg"], ["algorithm", "'ppg'", "'dpo'", "'ppo'", "'vineppo'"]),
        (["training.batch_size=33"], ["training.batch_size=33", "micro_batch_size=32"]),
        (["generation.temperature=-1"], ["generation.temperature", "-1"]),
        (["loop.iterations"], ["key.sub=value"]),
        (["algorithm=ppo", "algorithm.critic_warmup=7", "loop.iterations=7"], ["critic_warmup=7", "loop.iterations=7"]),
        (
            [
                "algorithm=ppo",
                "algorithm.critic_warmup=1",
                "algorithm.value_model=none",
                "algorithm.advantage_estimator=return",
            ],
            ["critic_warmup=1", "value_model=none"],
        ),
        (
            ["eval.fresh_problems=5", "task.name=jsonl", "task.jsonl.train_path=p.jsonl"],
            ["eval.fresh_problems=5", "arithmetic"],
        ),
        (
            ["eval.fresh_problems=1000", "task.arithmetic.digits=1", "task.arithmetic.num_train=200"],
            ["1000 fresh problems", "only 648 distinct", "ask for fewer"],
        ),
    ],
)
def test_bad_config_names_key_value_and_allowed(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, override)
    for w in words:
        assert w in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("loop:\n  iterations: 3\n  seed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line \d"):
        load_config(f)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["algorithm=raft", "loop.seed=3"])
    f = tmp_path / "c.yaml"
    f.write_text(dump_config(cfg))
    assert load_config(f) == cfg


@pytest.mark.parametrize(
    "args",
    [
        ["train", "CONFIG", "training.lr=abc"],
        ["train", "CONFIG", "model.path=/nonexistent/model"],
        ["train", "CONFIG", "task.name=jsonl", "task.jsonl.train_path=BADJSONL"],
        ["train", "MISSING.yaml"],
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args):
    config = tmp_path / "c.yaml"
    config.write_text(f"logging:\n  run_dir: {tmp_path / 'runs'}\n")
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"problem": "1+1=", "gold_answer": "2"}\n{"problem": oops}\n')
    args = [
        a.replace("CONFIG", str(config)).replace("BADJSONL", str(bad)).replace("MISSING", str(tmp_path / "missing"))
        for a in args
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    if "BAD" in " ".join(args) or "prompts.jsonl" in " ".join(args):
        assert "prompts.jsonl:2" in err
    assert not (tmp_path / "runs").exists()


def test_changed_config_is_refused_without_force(tmp_path):
    run = tmp_path / "r"
    assert prepare_run_dir(run, "a: 1\n") == run
    assert prepare_run_dir(run, "a: 1\n") == run  # same config resumes
    with pytest.raises(RunDirError, match="--force"):
        prepare_run_dir(run, "a: 2\n")
    assert (run / "config.yaml").read_text() == "a: 1\n"
    assert prepare_run_dir(run, "a: 2\n", new=True) == tmp_path / "r-2"
    assert prepare_run_dir(run, "a: 2\n", force=True) == run
    assert prepare_run_dir(run, "a: 3\n", force=True) == run
    history = {f.name: f.read_text() for f in (run / "config.history").iterdir()}  # every replaced config
    assert history == {config_sha(text) + ".yaml": text for text in ("a: 1\n", "a: 2\n")}


def test_the_refusal_names_the_keys_that_differ_and_ignores_display_only_ones(tmp_path):
    run = tmp_path / "r"
    old = "training:\n  lr: 0.0001\n  epochs: 2\nlogging:\n  progress: true\n"
    prepare_run_dir(run, old)
    shown = old.replace("progress: true", "progress: false")
    assert prepare_run_dir(run, shown) == run  # a display-only change resumes the run
    assert config_sha(shown) == config_sha(old) and not (run / "config.history").exists()
    with pytest.raises(RunDirError, match=r"\(training.lr: 0.0001 -> 1e-05; training.seed: '\(unset\)' -> 3\)"):
        prepare_run_dir(run, old.replace("0.0001", "1.0e-05").replace("epochs: 2", "epochs: 2\n  seed: 3"))
    assert config_differences(old, old.replace("epochs: 2", "epochs: 4")) == ["training.epochs: 2 -> 4"]


def test_a_damaged_stage_file_names_itself_and_the_recovery(tmp_path):
    good = tmp_path / "prepared.pt"
    torch.save({"x": torch.arange(1000)}, good)
    damaged = tmp_path / "iter_2" / "prepared.pt"
    damaged.parent.mkdir()
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated, as a full disk leaves it
    assert torch.equal(load_stage(good)["x"], torch.arange(1000))
    with pytest.raises(RunDirError, match=rf"{damaged} cannot be read .*delete it and rerun the same command"):
        load_stage(damaged)
    (tmp_path / "eval.json").write_text('{"greedy_accuracy": 0.5')
    with pytest.raises(RunDirError, match="eval.json cannot be read"):
        read_json(tmp_path / "eval.json")


def test_a_stage_file_whose_bytes_changed_is_caught_by_its_checksum(tmp_path):
    path = tmp_path / "scored.pt"
    atomic_torch_save(path, {"scores": torch.linspace(0, 1, 4096)})
    assert (tmp_path / "scored.pt.sha256").exists() and load_stage(path)["scores"][-1] == 1.0
    data = bytearray(path.read_bytes())
    body = data.index(b"\x00\x00\x80\x3f")  # 1.0 in float32: a value inside the tensor's storage
    data[body + 3] ^= 0x01  # one flipped bit: the zip archive still loads, with a wrong number
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=False)["scores"][-1] != 1.0  # torch alone does not notice
    with pytest.raises(RunDirError, match=r"scored.pt cannot be read \(ValueError: its sha256 differs"):
        load_stage(path)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT / "configs"))
)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.generation.n_samples_per_prompt >= cfg.algorithm.min_samples_per_prompt


def test_reward_model_needs_a_path_and_the_path_must_exist(tmp_path):
    from itero.models.loading import ModelNotFoundError
    from itero.runtime import preflight

    with pytest.raises(ConfigError, match="reward.name=model needs reward.model_path"):
        load_config(None, ["reward.name=model"])
    cfg = load_config(None, ["reward.name=model", f"reward.model_path={tmp_path / 'missing'}"])
    with pytest.raises(ModelNotFoundError):
        preflight(cfg)


def test_tis_cap_is_an_algorithm_option_and_the_old_key_still_loads():
    cfg = load_config(None, ["algorithm=grpo", "algorithm.tis_cap=2.0"])
    assert cfg.algorithm.tis_cap == 2.0
    assert not hasattr(cfg.generation, "tis_cap")
    # a run directory's config.yaml written with generation.tis_cap keeps loading: null is dropped,
    # a value moves to the algorithm section
    assert load_config(None, ["algorithm=grpo", "generation.tis_cap=null"]).algorithm.tis_cap is None
    assert load_config(None, ["algorithm=grpo", "generation.tis_cap=3.0"]).algorithm.tis_cap == 3.0
    with pytest.raises(ConfigError, match="tis_cap"):  # DPO has no token importance weights
        load_config(None, ["algorithm=dpo", "algorithm.tis_cap=2.0"])


def test_a_run_an_older_version_wrote_resumes_when_nothing_it_computes_differs(tmp_path):
    cfg = load_config("configs/rto.yaml", [])
    text = dump_config(cfg)
    old = yaml.safe_load(text)
    dpo = old["algorithm"].pop("dpo")  # the in-run DPO model's loss as top-level keys, as before
    old["algorithm"].update(dpo_loss=dpo["loss"], dpo_beta=dpo["beta"], dpo_nll_weight=dpo["nll_weight"])
    del old["training"]["max_tokens_per_micro_batch"]  # and an option that did not exist yet
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(RunDirError, match="algorithm.dpo.beta"):  # compared as text, the moved keys differ
        prepare_run_dir(run, text)
    assert prepare_run_dir(run, text, upgrade=upgraded_config_text) == run
    assert (run / "config.yaml").read_text() == text
    # what it computes still counts: another loss for the DPO model is refused
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False).replace("dpo_loss: dpop", "dpo_loss: ipo"))
    with pytest.raises(RunDirError, match="algorithm.dpo.loss: 'ipo' -> 'dpop'"):
        prepare_run_dir(run, text, upgrade=upgraded_config_text)
    assert upgraded_config_text("a: [") == "a: ["  # text that no longer loads is compared as it is
