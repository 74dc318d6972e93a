"""Small builders shared by tests: a tiny model and hand-made rollout batches."""

from __future__ import annotations

import torch

from itero.algorithms import sft
from itero.batch import RolloutBatch
from itero.models.tiny import build_char_tokenizer, build_tiny_model


def tiny(seed: int = 0, hidden: int = 32, layers: int = 2):
    tok = build_char_tokenizer()
    model = build_tiny_model(
        len(tok),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=2 * hidden,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        seed=seed,
    )
    return model, tok


def text_batch(tok, prompts: list[str], responses: list[str], scores=None, group_ids=None) -> RolloutBatch:
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    batch = sft.make_batch(
        [enc(p) for p in prompts], [enc(r) + [tok.eos_token_id] for r in responses], tok.pad_token_id
    )
    if scores is not None:
        batch = batch.replace(scores=torch.tensor(scores, dtype=torch.float32))
    if group_ids is not None:
        batch = batch.replace(group_ids=torch.tensor(group_ids))
    return batch.replace(prompt_texts=list(prompts), response_texts=list(responses))


# A GRPO run on one-digit sums that takes ~20 s: SFT enough that samples differ, so there is signal.
TINY_RUN = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.intermediate_size=64",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "sft.num_examples=60",
    "algorithm=grpo",  # advantages from the reward spread, so there is something to train on
    "loop.iterations=1",
    "loop.prompts_per_iteration=8",
    "generation.n_samples_per_prompt=4",
    "generation.max_new_tokens=20",
    "generation.temperature=1.0",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_ops=1",
    "task.arithmetic.ops=+",
    "task.arithmetic.num_train=60",
    "task.arithmetic.num_test=8",
    "eval.k=1",
    "training.batch_size=2",
    "training.micro_batch_size=2",
    "logging.progress=false",
]
