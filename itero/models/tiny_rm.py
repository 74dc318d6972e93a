"""A tiny Qwen2- or Llama-architecture reward model (sequence classification, one label), built locally.

Same shapes as ``build_tiny_model`` but with a scalar ``score`` head instead of the LM head. HF's
``*ForSequenceClassification`` pools the logit at the rightmost token that is not ``pad_token_id``,
so the config must carry the tokenizer's pad id; with no pad id it refuses batches larger than one.
"""

from __future__ import annotations

import torch
from transformers import (
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)

_CLASSES = {
    "qwen2": (Qwen2Config, Qwen2ForSequenceClassification),
    "llama": (LlamaConfig, LlamaForSequenceClassification),
}


def build_tiny_reward_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    arch: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> PreTrainedModel:
    if arch not in _CLASSES:
        raise ValueError(f"unknown tiny reward-model arch {arch!r}; choose one of {', '.join(_CLASSES)}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; sequence classification needs one to find the last token")
    config_cls, model_cls = _CLASSES[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return model_cls(config)
