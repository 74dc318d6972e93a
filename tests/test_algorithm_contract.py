"""The algorithm contract: every shipped algorithm meets it, and a new algorithm that needs an input
none of them uses (a frozen teacher's log-probs) runs through the prepare stage with no loop edit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ALGORITHMS, grpo
from itero.algorithms.base import Algorithm, Schedule, plain_loss
from itero.config import load_config
from itero.stages.prepare import prepare
from itero.training.forward import compute_logprobs


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_meets_the_contract(name):
    algo = ALGORITHMS[name]
    assert isinstance(algo, Algorithm)
    required = {"rto": ["algorithm.dpo_model_path=dpo"], "distill": ["algorithm.teacher_path=teacher"]}
    cfg = load_config(None, [f"algorithm={name}", *required.get(name, [])])
    assert isinstance(algo.schedule(cfg.algorithm), Schedule)
    assert all(isinstance(source, str) for source in algo.models_needed(cfg.algorithm).values())


class TeacherConfig(grpo.Config):
    """GRPO whose KL target is a frozen teacher instead of the reference."""

    teacher_path: str = "teacher"


def teacher_algorithm():
    def models_needed(cfg):
        return {"old": "previous", "teacher": cfg.teacher_path}

    def prepare_pulled(batch, cfg, ctx=None):
        if ctx is not None:
            batch = batch.replace(old_logprobs=ctx.logprobs("old"), ref_logprobs=ctx.logprobs("teacher"))
        return grpo.prepare(batch, cfg)

    return SimpleNamespace(
        Config=TeacherConfig,
        rows_per_unit=1,
        select=grpo.select,
        prepare=prepare_pulled,
        loss=grpo.loss,
        learner_loss=lambda cfg, ctx: plain_loss(grpo.loss, cfg),
        models_needed=models_needed,
        schedule=lambda cfg: Schedule(),
    )


def test_a_new_input_is_one_role_and_one_pull(tmp_path):
    policy, tok = tiny(seed=0)
    teacher, _ = tiny(seed=1)
    algo = teacher_algorithm()
    assert isinstance(algo, Algorithm)
    cfg = load_config(None, ["algorithm=grpo", "generation.reuse_sampler_logprobs=false"])
    cfg = cfg.model_copy(update={"algorithm": TeacherConfig(beta=0.1, teacher_path=str(tmp_path / "teacher"))})
    loaded = []
    rt = SimpleNamespace(
        cfg=cfg,
        algo=algo,
        run=tmp_path,
        tokenizer=tok,
        policy=policy,
        learner=SimpleNamespace(sharded=False),
        models=SimpleNamespace(  # the pool: the live policy for "previous", frozen models by path
            model=lambda source, start: policy if source == "previous" else loaded.append(source) or teacher
        ),
    )
    batch = text_batch(tok, ["1+2=", "1+2="], ["3", "4"], scores=[1.0, -1.0], group_ids=[0, 0])
    out = prepare(rt, 1, None, None, batch).result
    mbs = cfg.training.micro_batch_size
    assert loaded == [str(tmp_path / "teacher")]
    assert torch.allclose(out.ref_logprobs, compute_logprobs(teacher, batch, mbs, 1.0))
    assert torch.allclose(out.old_logprobs, compute_logprobs(policy, batch, mbs, 1.0))
    assert not torch.allclose(out.ref_logprobs, out.old_logprobs)  # two models, two forwards
    assert out.advantages[0, 0] > 0 > out.advantages[1, 0]
