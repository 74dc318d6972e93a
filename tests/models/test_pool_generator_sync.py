"""How the model pool brings its generator to the policy's weights: a LoRA policy's adapter folder
through ``load_adapter``, any other policy through ``update_weights``."""

from pathlib import Path

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


def pool(policy, generator) -> ModelPool:
    return ModelPool(cfg=None, run=Path("/run"), base_path="base", policy=policy, learner=None, generator=generator)


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
