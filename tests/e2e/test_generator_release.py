"""The loop hands the generation engine's memory back before every training phase (SFT and each
iteration's train stage), and brings the engine to the policy's weights before it samples again."""

from helpers import TINY_RUN

from itero.config import load_config
from itero.loop import run
from itero.models.pool import ModelPool
from itero.training.learner import Learner


def test_the_engine_sleeps_before_each_training_phase_and_is_synced_before_sampling(tmp_path, monkeypatch):
    events = []
    start_phase, ensure = Learner.start_phase, ModelPool.ensure_policy

    def released(self):
        events.append("release")
        self.generator_source = "asleep"  # what a vLLM engine in sleep mode leaves (the hf backend shares weights)

    def started(self, *args, **kwargs):
        events.append("train")
        return start_phase(self, *args, **kwargs)

    def ensured(self, checkpoint):
        synced = self.generator_source == "asleep"
        ensure(self, checkpoint)
        if synced:
            events.append("sync")

    monkeypatch.setattr(ModelPool, "release_generator", released)
    monkeypatch.setattr(Learner, "start_phase", started)
    monkeypatch.setattr(ModelPool, "ensure_policy", ensured)
    cfg = load_config(None, [*TINY_RUN, "loop.iterations=2", f"logging.run_dir={tmp_path}"])
    run(cfg)
    # SFT, then two iterations: each training phase starts after a release, and the engine is synced
    # to the new weights before anything samples again (the iteration's evaluation, the next generate)
    assert events == ["release", "train", "sync", "release", "train", "sync", "release", "train", "sync"]
