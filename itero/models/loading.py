"""Models and tokenizers from a hub name or a local folder, through the HF Auto classes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from itero.errors import IteroError
from itero.training.sharding import is_sharded, load_full_state_dict

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Tokenizers saved from a bare `tokenizers` object. AutoTokenizer would swap in the model family's own
# tokenizer class (e.g. Qwen2Tokenizer for a qwen2 config), replacing the saved pre-tokenizer: a
# character tokenizer then silently drops spaces when encoding. The fast class keeps tokenizer.json as saved.
_GENERIC_TOKENIZER_CLASSES = {"PreTrainedTokenizerFast", "TokenizersBackend"}
_ROUND_TRIP_PROBE = "Solve: 12 + 7*3 = 33.\n\\boxed{33}"


class ModelNotFoundError(IteroError, FileNotFoundError):
    pass


def check_model_path(name_or_path: str) -> None:
    looks_local = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()
    if looks_local and not (Path(name_or_path).expanduser() / "config.json").exists():
        raise ModelNotFoundError(
            f"model path {name_or_path!r} does not exist or has no config.json; "
            "give a folder written by save_pretrained, or a hub model name"
        )


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    check_model_path(name_or_path)
    config_file = Path(name_or_path).expanduser() / "tokenizer_config.json"
    tokenizer_class = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.exists() else None
    if tokenizer_class in _GENERIC_TOKENIZER_CLASSES:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(name_or_path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = tokenizer.encode(_ROUND_TRIP_PROBE, add_special_tokens=False)
    if tokenizer.decode(ids) != _ROUND_TRIP_PROBE:
        log.warning("tokenizer %s does not round-trip text (decode(encode(x)) != x)", name_or_path)
    return tokenizer


def load_model(name_or_path: str, dtype: str = "float32", device: str | torch.device = "cpu") -> PreTrainedModel:
    check_model_path(name_or_path)
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=_DTYPES[dtype])
    return model.to(device)


def load_weights_into(model: PreTrainedModel, path: str | Path) -> None:
    """Copy the weights saved in ``path`` into ``model`` in place, keeping its parameter objects
    (the optimizer and generator that hold them stay valid)."""
    from safetensors.torch import load_file

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"no *.safetensors weights in {path}")
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    if is_sharded(model):  # FSDP2: each rank copies its own shard of every full tensor
        missing, unexpected = load_full_state_dict(model, state)
    else:
        missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k and model.config.tie_word_embeddings}
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"weights in {path} do not match the model: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}"
        )
