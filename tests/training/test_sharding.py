"""Single-process parts of itero/training/sharding.py and the balanced row split (the 2-rank runs are in
tests/e2e/test_distributed.py)."""

import copy

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import sft
from itero.batch import RolloutBatch
from itero.distributed import Dist
from itero.training import sharding
from itero.training.learner import Learner, OptimConfig


def trained_optimizer(model):
    learner = Learner(model, OptimConfig(lr=1e-2, batch_size=4, micro_batch_size=4))
    _, tok = tiny()
    batch = sft.prepare(text_batch(tok, ["a", "b", "c", "d"], ["1", "22", "333", "4444"]))
    learner.start_phase(10)
    learner.step(batch, [0, 1, 2, 3], 4, sft.loss)
    return learner.optimizer


def fresh(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, betas=(0.9, 0.95))


def assert_same_state(a: dict, b: dict) -> None:
    assert sorted(a["state"]) == sorted(b["state"])
    for k in a["state"]:
        for name, value in a["state"][k].items():
            torch.testing.assert_close(b["state"][k][name], value, rtol=0, atol=0)
    assert [g["params"] for g in a["param_groups"]] == [g["params"] for g in b["param_groups"]]


def test_optimizer_state_loads_by_index_and_by_parameter_name():
    model, _ = tiny()
    saved = trained_optimizer(model).state_dict()
    assert saved["state"], "AdamW has moments after a step"
    by_index = fresh(model)
    sharding.load_optimizer_state(model, by_index, copy.deepcopy(saved))
    assert_same_state(saved, by_index.state_dict())

    # the name-keyed form a sharded run saves (torch.distributed.checkpoint's full optimizer state)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    named = {
        "state": {names[i]: v for i, v in saved["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]],
    }
    by_name = fresh(model)
    sharding.load_optimizer_state(model, by_name, named)
    assert_same_state(saved, by_name.state_dict())


def test_plain_model_is_not_sharded_and_has_blocks_to_shard():
    model, _ = tiny()
    assert not sharding.is_sharded(model)
    assert sharding._block_classes(model) == {"Qwen2DecoderLayer"}  # from the model's _no_split_modules
    with pytest.raises(ValueError, match="does not shard"):
        sharding.shard_model(model, "ddp", torch.device("cpu"))
    assert sharding.as_float(torch.tensor(2.5)) == 2.5


class TwoRanks(Dist):
    """Rank ``rank`` of 2 whose all-gather returns what each rank's map_rows computed (rank 1 runs first)."""

    rank1_part = None

    def gather_objects(self, obj):
        if self.rank == 1:
            TwoRanks.rank1_part = obj
            return [None, obj]
        return [obj, TwoRanks.rank1_part]


@pytest.mark.parametrize("balanced", [False, True])
def test_map_rows_gathers_every_row_and_balanced_gives_each_rank_the_same_count(balanced):
    _, tok = tiny()
    batch: RolloutBatch = text_batch(tok, ["p"] * 5, ["a", "bb", "ccc", "dddd", "eeeee"])
    seen = {}

    def lengths(b: RolloutBatch, rank: int) -> torch.Tensor:
        seen[rank] = b.batch_size
        return b.response_mask.sum(-1, keepdim=True).float()

    TwoRanks(rank=1, world_size=2).map_rows(lambda b: lengths(b, 1), batch, balanced=balanced)
    out = TwoRanks(rank=0, world_size=2).map_rows(lambda b: lengths(b, 0), batch, balanced=balanced)
    lengths_in_order = batch.response_mask.sum(-1).float()
    assert lengths_in_order.tolist() == sorted(set(lengths_in_order.tolist()))  # 5 different rows, increasing
    assert torch.equal(out.squeeze(-1), lengths_in_order)  # padding rows dropped, order restored
    assert (seen[0], seen[1]) == ((3, 3) if balanced else (3, 2))


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, "ddp"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "zero3"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, "zero2"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "0"}, "ddp"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "FULL_SHARD"}, "fsdp"),
        (
            {
                "ACCELERATE_USE_FSDP": "true",
                "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
                "FSDP_RESHARD_AFTER_FORWARD": "false",
            },
            "zero2",
        ),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "NO_SHARD"}, "ddp"),
    ],
)
def test_an_accelerate_config_chooses_the_strategy_when_the_itero_config_leaves_ddp(env, expected):
    assert sharding.launcher_strategy("ddp", env) == expected
    assert sharding.launcher_strategy(expected, env) == expected  # both saying the same is fine


def test_conflicting_strategies_are_refused_with_both_named():
    env = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}
    with pytest.raises(ValueError, match="strategy=zero3.*ZeRO stage 2"):
        sharding.launcher_strategy("zero3", env)
    assert sharding.launcher_strategy("zero3", {}) == "zero3"


@pytest.fixture
def one_rank_group(tmp_path):
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    tdist.destroy_process_group()


def _gathered(model) -> list[str]:
    """Names of the parameters held whole (plain tensors) rather than as shards (DTensors)."""
    from torch.distributed.tensor import DTensor

    return [name for name, p in model.named_parameters() if not isinstance(p, DTensor)]


@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_a_no_grad_forward_leaves_the_model_sharded(one_rank_group, strategy):
    """zero2 keeps a forward's gathered blocks for the backward; after a no-grad forward (old / ref
    log-probs, V_old) there is none, and the root's hook must shard them back."""
    model, tok = tiny()
    sharding.shard_model(model, strategy, torch.device("cpu"))
    ids = torch.tensor([tok.encode("12+3=", add_special_tokens=False)])
    with torch.no_grad():
        model(input_ids=ids)
    assert _gathered(model) == []
    model(input_ids=ids).logits.sum().backward()  # with grad: gathered for the backward, sharded after it
    assert _gathered(model) == []
