"""How the model pool brings its generator to the policy's weights: a LoRA policy's adapter folder
through ``load_adapter``, any other policy through ``update_weights``."""

from pathlib import Path
from types import SimpleNamespace

from helpers import tiny

from itero.model_config import LoraSettings
from itero.models.lora import apply_lora
from itero.models.pool import ModelPool


class Recorder:
    """A generator that records what the pool asks of it."""

    batch_size = None

    def __init__(self):
        self.calls = []

    def update_weights(self, model):
        self.calls.append(("update_weights", model))

    def load_adapter(self, folder, model):
        self.calls.append(("load_adapter", folder, model))

    def sleep(self, level=1):
        self.calls.append(("sleep", level))


def pool(policy, generator, backend="hf", sleep_mode=False) -> ModelPool:
    cfg = SimpleNamespace(generation=SimpleNamespace(backend=backend, vllm_sleep_mode=sleep_mode))
    return ModelPool(cfg=cfg, run=Path("/run"), base_path="base", policy=policy, learner=None, generator=generator)


def test_a_lora_policy_reaches_the_generator_as_its_adapters():
    policy = apply_lora(tiny()[0], LoraSettings(r=4, alpha=8.0))
    models = pool(policy, Recorder())
    models.ensure_policy(None)  # the adapters' base, no adapter checkpoint yet
    assert models.generator.calls == [("load_adapter", None, policy)]
    models.ensure_policy(None)  # the generator already serves it
    assert len(models.generator.calls) == 1


def test_a_plain_policy_reaches_the_generator_as_its_weights():
    policy = tiny()[0]
    models = pool(policy, Recorder())
    models.ensure_policy(None)
    assert models.generator.calls == [("update_weights", policy)]


def test_an_engine_with_sleep_mode_sleeps_while_the_learner_trains_and_is_refilled_after():
    policy = tiny()[0]
    models = pool(policy, Recorder(), backend="vllm", sleep_mode=True)
    models.ensure_policy(None)
    models.release_generator()  # the train stage, before the learner's first step
    assert models.generator.calls[-1] == ("sleep", 2)  # weights dropped: a sync follows every update
    models.ensure_policy(None)  # even with the policy's weights unchanged, the dropped engine is refilled
    assert models.generator.calls[-1] == ("update_weights", policy)


def test_a_lora_engine_keeps_its_base_weights_asleep_and_no_sleep_mode_means_no_sleep():
    policy = apply_lora(tiny()[0], LoraSettings(r=4, alpha=8.0))
    models = pool(policy, Recorder(), backend="vllm", sleep_mode=True)
    models.release_generator()
    assert models.generator.calls == [("sleep", 1)]  # the adapters are served over the base it keeps
    for backend, sleep_mode in (("vllm", False), ("hf", True)):
        models = pool(tiny()[0], Recorder(), backend=backend, sleep_mode=sleep_mode)
        models.release_generator()
        assert models.generator.calls == []
