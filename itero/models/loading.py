"""Models and tokenizers from a hub name or a local folder, through the HF Auto classes."""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.error
import urllib.request
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
from itero.models import lora
from itero.training.sharding import is_sharded, load_full_state_dict

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Tokenizers saved from a bare `tokenizers` object. AutoTokenizer would swap in the model family's own
# tokenizer class (e.g. Qwen2Tokenizer for a qwen2 config), replacing the saved pre-tokenizer: a
# character tokenizer then silently drops spaces when encoding. The fast class keeps tokenizer.json as saved.
_GENERIC_TOKENIZER_CLASSES = {"PreTrainedTokenizerFast", "TokenizersBackend"}
_ROUND_TRIP_PROBE = "Solve: 12 + 7*3 = 33.\n\\boxed{33}"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_RESAVE = "save the model again (save_pretrained) or download it again"
_DAMAGED_WEIGHTS = (
    "the weights are truncated or damaged; for a run's checkpoint delete its folder and rerun the same command "
    "to recompute it, otherwise save or download the model again"
)


class ModelNotFoundError(IteroError, FileNotFoundError):
    pass


class ModelFileError(IteroError, ValueError):
    """A model folder whose files exist but cannot be used (damaged, or a tokenizer of another model)."""


def check_model_path(name_or_path: str) -> None:
    """A local folder: config, weights and tokenizer files readable; a hub name: reachable, or cached."""
    looks_local = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()
    if not looks_local:
        check_hub_name(name_or_path)
        return
    folder = Path(name_or_path).expanduser()
    if lora.is_adapter_folder(folder):  # LoRA adapters: their weights, tokenizer and base model
        check_weights(folder)
        check_model_path(lora.adapter_base(folder))
    elif not (folder / "config.json").exists():
        raise ModelNotFoundError(
            f"model path {name_or_path!r} does not exist or has no config.json; "
            "give a folder written by save_pretrained, or a hub model name"
        )
    read_model_config(folder)
    check_weights(folder)
    if not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"model folder {folder} has no tokenizer ({' or '.join(_TOKENIZER_FILES)}); "
            "save the tokenizer beside the model (tokenizer.save_pretrained)"
        )


def read_model_config(folder: str | Path) -> dict:
    """``config.json`` of a local model folder (of its base for an adapter folder); a damaged one is one
    line naming the file."""
    if lora.is_adapter_folder(folder):
        return read_model_config(lora.adapter_base(folder))
    path = Path(folder).expanduser() / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ModelFileError(f"{path} cannot be read ({str(err)[:100]}): {_RESAVE}") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} is not a JSON object: {_RESAVE}")
    return config


def check_weights(folder: Path) -> None:
    """Weight files exist and their headers match their sizes (a truncated download or copy fails here,
    in a second, not minutes later inside from_pretrained)."""
    safetensors = sorted(folder.glob("*.safetensors"))
    if not safetensors and not list(folder.glob("pytorch_model*.bin")):
        raise ModelNotFoundError(
            f"model folder {folder} has no weights (*.safetensors or pytorch_model*.bin): {_RESAVE}"
        )
    from safetensors import safe_open

    for f in safetensors:
        try:
            with safe_open(str(f), "pt"):
                pass
        except Exception as err:  # SafetensorError, or an OSError for an unreadable file
            raise ModelFileError(f"{f} cannot be read ({str(err)[:100]}): {_DAMAGED_WEIGHTS}") from None


def check_hub_name(name: str) -> None:
    """A name that is not a local folder is fetched from the hub: fail in seconds when it cannot be,
    rather than after a minute of retries (or a cache miss with HF_HUB_OFFLINE set)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    problem = _hub_problem(name, offline, endpoint.rstrip("/"))
    if problem:
        raise ModelNotFoundError(problem)


@functools.lru_cache(maxsize=64)
def _hub_problem(name: str, offline: bool, endpoint: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return None  # cached: from_pretrained finds it
    except ValueError:  # HFValidationError: not a repo id either
        return f"model {name!r} is neither a local folder nor a hub model name (owner/name); check the path"
    if offline:
        return (
            f"model {name!r} is not a local folder and is not in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
            "give a local folder written by save_pretrained, or download it first (hf download NAME)"
        )
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/api/models/{name}", method="HEAD"), timeout=5)
    except urllib.error.HTTPError:
        return None  # the hub answered (a gated or private model needs a token: from_pretrained says so)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return (
            f"model {name!r} is not a local folder and the hub ({endpoint}) cannot be reached ({reason}): give a "
            "local folder written by save_pretrained, or set HF_HUB_OFFLINE=1 to use a model already in the cache"
        )
    return None


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, config: dict, where: str) -> None:
    """Every token id the tokenizer can produce has a row in the model's embedding."""
    vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    largest = max(tokenizer.get_vocab().values(), default=-1)
    if vocab and largest >= vocab:
        raise ModelFileError(
            f"{where}: the tokenizer has token ids up to {largest} but the model's vocab_size is {vocab} "
            "(config.json): the tokenizer belongs to another model; save the model's own tokenizer beside it"
        )


def context_length(config: dict) -> int | None:
    """The longest sequence the model's positions cover, from its config (None when it does not say)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = config.get(key) or (config.get("text_config") or {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def has_trained_score_head(folder: str | Path) -> bool:
    """Whether a local model was saved as a sequence classifier (a reward model), not a causal LM whose
    score head AutoModelForSequenceClassification would initialise at random."""
    config = read_model_config(folder)
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    check_model_path(name_or_path)
    folder = Path(name_or_path).expanduser()
    local = (folder / "config.json").exists() or lora.is_adapter_folder(folder)
    try:
        tokenizer = _read_tokenizer(name_or_path, folder / "tokenizer_config.json")
    except Exception as err:  # tokenizers raises plain Exceptions for a damaged tokenizer.json
        if not local:
            raise
        raise ModelFileError(
            f"the tokenizer in {folder} cannot be loaded ({type(err).__name__}: {str(err)[:100]}): "
            "save the model's tokenizer there again (tokenizer.save_pretrained)"
        ) from None
    if local:  # its tokenizer must fit its model
        check_tokenizer_fits(tokenizer, read_model_config(folder), name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = tokenizer.encode(_ROUND_TRIP_PROBE, add_special_tokens=False)
    if tokenizer.decode(ids) != _ROUND_TRIP_PROBE:
        log.warning("tokenizer %s does not round-trip text (decode(encode(x)) != x)", name_or_path)
    return tokenizer


def _read_tokenizer(name_or_path: str, config_file: Path) -> PreTrainedTokenizerBase:
    tokenizer_class = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.exists() else None
    if tokenizer_class in _GENERIC_TOKENIZER_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(name_or_path)
    return AutoTokenizer.from_pretrained(name_or_path)


def load_model(name_or_path: str, dtype: str = "float32", device: str | torch.device = "cpu") -> PreTrainedModel:
    check_model_path(name_or_path)
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    if lora.is_adapter_folder(name_or_path):  # a frozen use of an adapted policy: base + adapters merged
        base = load_model(lora.adapter_base(name_or_path), dtype=dtype, device=device)
        return lora.merge_adapters(base, name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=_DTYPES[dtype])
    return model.to(device)


def load_weights_into(model: PreTrainedModel, path: str | Path) -> None:
    """Copy the weights saved in ``path`` into ``model`` in place, keeping its parameter objects
    (the optimizer and generator that hold them stay valid). A LoRA policy takes an adapter folder's
    adapters, or full weights as its base with fresh adapters."""
    from safetensors.torch import load_file

    if lora.is_lora(model) and lora.is_adapter_folder(path):
        base = lora.base_name(lora.adapter_base(path))
        if getattr(model, "itero_base", None) != base:  # the base layers hold other weights: theirs first
            load_weights_into(model, base)
        lora.load_adapters_into(model, path)
        return
    if lora.is_adapter_folder(path):
        raise ModelFileError(f"{path} holds LoRA adapters; load it with load_model (base + adapters merged)")

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"no *.safetensors weights in {path}")
    state = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as err:  # SafetensorError: a truncated or damaged file
            raise ModelFileError(f"{f} cannot be read ({str(err)[:100]}): {_DAMAGED_WEIGHTS}") from None
    if lora.is_lora(model):
        lora.reset_adapters(model)
        model.itero_base = lora.base_name(path)
        model, state = lora.base_layers(model, state)
    if is_sharded(model):  # FSDP2: each rank copies its own shard of every full tensor
        missing, unexpected = load_full_state_dict(model, state)
    else:
        missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k and model.config.tie_word_embeddings}
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"weights in {path} do not match the model: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}"
        )
