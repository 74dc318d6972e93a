"""Model sizes from an architecture description, without downloading a model.

``ModelShape.params()`` counts the parameters of a Qwen2 / Llama decoder exactly as the HF classes
build it: per layer q, k, v (with a bias in Qwen2), o, gate / up / down, two RMSNorms; then the final
norm, the token embeddings, and an LM head (unless tied) or a reward / value model's scalar head.
``KNOWN_MODELS`` holds the models the recipes name; a local folder's ``config.json`` wins over it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# HF model types whose weights follow the Llama layout (no bias in attention or MLP)
_LLAMA_LIKE = ("llama", "mistral")


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tie_embeddings: bool = False
    arch: Literal["qwen2", "llama"] = "llama"  # qwen2 puts a bias on q, k and v
    head: Literal["lm", "score"] = "lm"  # score: AutoModelForSequenceClassification's hidden → 1, no bias
    max_positions: int | None = None  # context length the model was trained for
    head_dim_override: int | None = None  # config.json "head_dim" when it is not hidden / heads

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.hidden // self.heads

    def params(self) -> int:
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden
        if self.arch == "qwen2":
            attention += q_out + 2 * kv_out
        mlp = 3 * self.hidden * self.intermediate
        layer = attention + mlp + 2 * self.hidden
        embeddings = self.vocab * self.hidden
        if self.head == "score":
            out_head = self.hidden
        else:
            out_head = 0 if self.tie_embeddings else self.vocab * self.hidden
        return self.layers * layer + self.hidden + embeddings + out_head

    def lora_params(self, r: int, target_modules) -> tuple[int, list[str]]:
        """(adapter parameters, target names not found) for LoRA of rank ``r``: r·(in + out) per adapted
        linear; "all-linear" = q, k, v, o, gate, up, down in every layer (peft leaves the lm_head out)."""
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        linears = {
            "q_proj": (self.hidden, q_out),
            "k_proj": (self.hidden, kv_out),
            "v_proj": (self.hidden, kv_out),
            "o_proj": (q_out, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }
        names = list(linears) if target_modules == "all-linear" else [t.rsplit(".", 1)[-1] for t in target_modules]
        per_layer = sum(r * sum(linears[n]) for n in set(names) if n in linears)
        return self.layers * per_layer, sorted({n for n in names if n not in linears})

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """Keys and values of one token over all layers: 2 × layers × kv_heads × head_dim × bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def as_scorer(self) -> ModelShape:
        """The same backbone with a scalar head: a reward model or a critic started from this model."""
        return dataclasses.replace(self, head="score", tie_embeddings=False)

    @classmethod
    def from_hf_config(cls, config: dict) -> ModelShape | None:
        """From a config.json dict; None for an architecture whose layout is not counted here."""
        model_type = config.get("model_type")
        if model_type != "qwen2" and model_type not in _LLAMA_LIKE:
            return None
        archs = config.get("architectures") or []
        return cls(
            hidden=config["hidden_size"],
            layers=config["num_hidden_layers"],
            heads=config["num_attention_heads"],
            kv_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
            intermediate=config["intermediate_size"],
            vocab=config["vocab_size"],
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            arch="qwen2" if model_type == "qwen2" else "llama",
            head="score" if any(a.endswith("ForSequenceClassification") for a in archs) else "lm",
            max_positions=config.get("max_position_embeddings"),
            head_dim_override=config.get("head_dim"),
        )


# The shapes below are copied from each model's config.json on the hub (hidden_size,
# num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,
# tie_word_embeddings, max_position_embeddings), written down here because nothing is downloaded.
_QWEN25_7B = dict(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064, arch="qwen2")
_LLAMA3_8B = dict(hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256, max_positions=8192)
_LLAMA1_7B = dict(hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008, max_positions=2048)
_DEEPSEEKMATH_7B = dict(
    hidden=4096, layers=30, heads=32, kv_heads=32, intermediate=11008, vocab=102400, max_positions=4096
)
# TinyLlama-1.1B's shape; Rho-Math-1B (and VinePPO's rho-1b SFT) continue its pre-training
_TINYLLAMA = dict(hidden=2048, layers=22, heads=32, kv_heads=4, intermediate=5632, vocab=32000, max_positions=2048)
_LLAMA32_1B = dict(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, max_positions=131072)

KNOWN_MODELS: dict[str, ModelShape] = {
    # Qwen2.5-Math has a 4k context (Online-DPO-R1 still generates up to 4096 new tokens)
    "Qwen/Qwen2.5-Math-7B": ModelShape(**_QWEN25_7B, max_positions=4096),
    "Qwen/Qwen2.5-7B": ModelShape(**_QWEN25_7B, max_positions=131072),
    "Qwen/Qwen2.5-7B-Instruct": ModelShape(**_QWEN25_7B, max_positions=32768),
    "meta-llama/Meta-Llama-3-8B": ModelShape(**_LLAMA3_8B),
    "meta-llama/Meta-Llama-3-8B-Instruct": ModelShape(**_LLAMA3_8B),
    "OpenRLHF/Llama-3-8b-sft-mixture": ModelShape(**_LLAMA3_8B),  # RTO's SFT policy
    "RTO-RL/Llama3-8B-DPO": ModelShape(**_LLAMA3_8B),  # RTO's frozen DPO model
    # Bradley-Terry reward models: the Llama backbone with a 1-output score head instead of lm_head
    "sfairXC/FsfairX-LLaMA3-RM-v0.1": ModelShape(**_LLAMA3_8B, head="score"),
    "RTO-RL/Llama3.2-1B-RewardModel": ModelShape(**_LLAMA32_1B, head="score"),
    "meta-llama/Llama-3.2-1B": ModelShape(**_LLAMA32_1B, tie_embeddings=True),
    "deepseek-ai/deepseek-math-7b-base": ModelShape(**_DEEPSEEKMATH_7B),
    "realtreetune/deepseekmath-7b-sft-MATH-v2": ModelShape(**_DEEPSEEKMATH_7B),  # VinePPO's SFT
    "microsoft/rho-math-1b-v0.1": ModelShape(**_TINYLLAMA),
    "realtreetune/rho-1b-sft-MATH": ModelShape(**_TINYLLAMA),  # VinePPO's SFT
    "TinyLlama/TinyLlama_v1.1": ModelShape(**_TINYLLAMA),
    # LLaMA-1 7B fine-tuned with Alpaca; 32001 = LLaMA's 32000 + the added pad token (not re-checked here)
    "PKU-Alignment/alpaca-7b-reproduced": ModelShape(**_LLAMA1_7B, vocab=32001),
}
_BY_LOWER = {name.lower(): shape for name, shape in KNOWN_MODELS.items()}


def resolve_shape(name_or_path: str) -> tuple[ModelShape | None, str]:
    """(shape, where it came from): a local folder's config.json, else the table; (None, why) if neither."""
    config_file = Path(name_or_path).expanduser() / "config.json"
    if config_file.is_file():
        shape = ModelShape.from_hf_config(json.loads(config_file.read_text()))
        if shape is None:
            return None, f"{config_file}: architecture not counted here (Qwen2 / Llama layouts only)"
        return shape, str(config_file)
    shape = _BY_LOWER.get(name_or_path.lower())
    if shape is None:
        return None, (
            f"{name_or_path!r} is neither a local folder with config.json nor a known model "
            f"(itero/planning/shapes.py KNOWN_MODELS)"
        )
    return shape, "known shape (itero/planning/shapes.py)"
