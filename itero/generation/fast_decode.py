"""Prefill and decode of Qwen2 and Llama models in plain torch ops: the hf backend's fast path.

Why: on CPU most of a step is matmuls and the attention's pass over the KV cache, both near the
machine's limits; this file removes what comes on top. The HF forward adds module dispatch, a 4D
mask and the rotary cos/sin rebuilt every step, rotate_half's negation, and in the prefill the
matmuls of every pad token; its attention reads every row's padding columns. Here the prefill runs
on the prompts' tokens only (packed, per group of rows), each layer is the HF modules' maths in
the same order, q/k/v are one matmul over weights stacked per ``_Stepper`` (so each generation
sees the learner's current weights), and attention runs per group of rows of similar prompt
length (``_Stepper`` sorts them), skipping the padding columns the whole group masks out.

Anything this file has not been checked against keeps the generic path: other architectures,
rope scaling, sliding windows, quantized, offloaded, hooked or adapter-wrapped models, dtypes other
than float32 and bfloat16 and devices other than CPU (``unsupported_reason`` says which). In bfloat16
(on CPUs with AMX or AVX512-BF16 its matmuls run several times faster than float32) the maths is
the HF modules' in the same dtype, equal to rounding, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DynamicCache, LlamaForCausalLM, Qwen2ForCausalLM

from itero.generation.kv_cache import PreallocatedLayer

_CAUSAL_LMS = (Qwen2ForCausalLM, LlamaForCausalLM)
_TORCH_VERSION = tuple(int(x) for x in torch.__version__.split(".")[:2])
# sdpa and eager compute the same attention (float32 softmax); other kernels are not checked here.
_ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
# Prefill and decode attention run in up to this many groups of rows of similar prompt length, each
# of at least the minimum rows and, in decode, the minimum KV bytes: smaller calls cost more in
# overhead (and in thread synchronisation) than the padding columns they skip.
ATTENTION_GROUPS = 8
ATTENTION_GROUP_MIN_ROWS = 16
ATTENTION_GROUP_MIN_BYTES = 2 << 20
Linear = tuple[Tensor, Tensor | None]  # weight, bias
Norm = tuple[Tensor, float]  # weight, eps


@dataclass(frozen=True)
class _Layer:
    input_norm: Norm
    qkv: Linear  # q, k and v projections stacked on the output dimension
    o: Linear
    post_norm: Norm
    gate: Linear
    up: Linear
    down: Linear
    act: Callable[[Tensor], Tensor]


def unsupported_reason(model: nn.Module) -> str | None:
    """Why ``model`` must keep the generic path, or None when ``FastDecoder`` computes its forward."""
    if type(model) not in _CAUSAL_LMS:
        return f"{type(model).__name__} is not one of {', '.join(c.__name__ for c in _CAUSAL_LMS)}"
    config, inner = model.config, model.model
    if _TORCH_VERSION < (2, 5):
        return "torch older than 2.5 (scaled_dot_product_attention without enable_gqa)"
    if getattr(model, "hf_quantizer", None) is not None:
        return "quantized"
    if {(p.dtype, p.device.type) for p in model.parameters()} not in (
        {(torch.float32, "cpu")},
        {(torch.bfloat16, "cpu")},
    ):
        return "parameters are not all float32 or all bfloat16 on CPU"
    if config._attn_implementation not in _ATTENTION_IMPLEMENTATIONS:
        return f"attention implementation {config._attn_implementation!r}"
    if getattr(inner.rotary_emb, "rope_type", None) != "default":
        return f"rope type {getattr(inner.rotary_emb, 'rope_type', None)!r}"
    if getattr(config, "use_sliding_window", False) or any(
        t != "full_attention" for t in getattr(config, "layer_types", None) or []
    ):
        return "sliding-window layers"
    for name, module in model.named_modules():
        # Offloading (accelerate), adapters and user hooks act inside the modules this path skips.
        if (
            hasattr(module, "_hf_hook")
            or "forward" in vars(module)
            or module._forward_hooks
            or module._forward_pre_hooks
        ):
            return f"module {name or 'model'} is hooked or has its forward replaced"
    layers = inner.layers[: config.num_hidden_layers]
    projections = [model.lm_head] + [
        p for layer in layers for p in (*_attention_projections(layer), *_mlp_projections(layer))
    ]
    if any(type(p) is not nn.Linear for p in projections) or type(inner.embed_tokens) is not nn.Embedding:
        return "a projection or the embedding is not a plain nn.Linear / nn.Embedding (adapter or quantized)"
    return None


def fast_decoders(
    models: Sequence[nn.Module], caches: Sequence[DynamicCache], capacity: int
) -> list[FastDecoder] | None:
    """One FastDecoder per model, or None when any model or cache layer needs the generic path."""
    if any(unsupported_reason(m) is not None for m in models):
        return None
    if not all(isinstance(layer, PreallocatedLayer) for c in caches for layer in c.layers):
        return None
    return [FastDecoder(m, c, capacity) for m, c in zip(models, caches)]


class FastDecoder:
    """A supported model's prefill and decode steps over its PreallocatedLayer caches; build with ``fast_decoders``.

    Same tensors in and out as the model's forward in ``_Stepper`` (logits float32 of each row's last token).
    """

    def __init__(self, model: nn.Module, cache: DynamicCache, capacity: int):
        inner = model.model
        layers = inner.layers[: model.config.num_hidden_layers]
        self.layers = [_fuse(layer) for layer in layers]
        self.cache_layers: list[PreallocatedLayer] = list(cache.layers)
        self.embedding = inner.embed_tokens.weight
        self.norm: Norm = (inner.norm.weight, inner.norm.variance_epsilon)
        self.lm_head: Linear = (model.lm_head.weight, model.lm_head.bias)
        attention = layers[0].self_attn
        self.head_dim, self.groups, self.scaling = attention.head_dim, attention.num_key_value_groups, attention.scaling
        self.n_heads, self.n_kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
        self.cos, self.signed_sin = _rotary_tables(inner.rotary_emb, capacity, self.embedding.dtype)

    def __call__(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        """One new token per row: input_ids / positions (N, 1), attention_mask (N, L) over the cache
        columns including the new one. Returns (N, V)."""
        # HF's boolean (N, 1, 1, L) mask for a one-token step, broadcast over heads.
        mask = _additive(attention_mask.bool()[:, None, None, :], self.embedding.dtype)
        kv_bytes = attention_mask.numel() * self.n_kv_heads * self.head_dim * 2 * self.embedding.element_size()
        groups = _row_groups(attention_mask, max_groups=kv_bytes // ATTENTION_GROUP_MIN_BYTES)

        def attend(cache: PreallocatedLayer, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            keys, values = cache.update(k[:, :, None], v[:, :, None])
            # HF's pack_gqa: the G query heads sharing a KV head become G query rows of it, no repeat_kv copy.
            query = q.reshape(len(q), -1, self.groups, self.head_dim)
            return torch.cat(
                [
                    F.scaled_dot_product_attention(
                        query[a:b],
                        keys[a:b, :, s:],
                        values[a:b, :, s:],
                        attn_mask=mask[a:b, ..., s:],
                        scale=self.scaling,
                    )
                    for a, b, s in groups
                ]
            )

        return self._logits(self._hidden(input_ids[:, -1], positions[:, -1], attend))

    def prefill(self, prompt_ids: Tensor, prompt_mask: Tensor, positions: Tensor) -> Tensor:
        """Left-padded prompts (B, P) and their positions: fills the caches' columns 0..P-1 and
        returns (B, V) after each prompt.

        Each group of rows runs on its prompts' tokens only, packed. Groups rather than the whole
        batch at once: the activations of a few hundred tokens stay in the CPU caches; those of the
        whole batch made the elementwise ops cost more than the padding saved.
        """
        return torch.cat([self._prefill_rows(prompt_ids, prompt_mask, positions, *g) for g in _row_groups(prompt_mask)])

    def _prefill_rows(
        self, prompt_ids: Tensor, prompt_mask: Tensor, positions: Tensor, a: int, b: int, s: int
    ) -> Tensor:
        """Prefill of rows a..b, whose tokens all lie in columns s.."""
        B, P = prompt_ids.shape
        real = prompt_mask[a:b, s:]
        rows, columns = real.nonzero(as_tuple=True)  # packed tokens, row by row
        causal = torch.ones(P - s, P - s, dtype=torch.bool, device=real.device).tril()
        mask = _additive(causal & real[:, None, None, :], self.embedding.dtype)

        def attend(cache: PreallocatedLayer, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            cache.write_tokens(rows + a, columns + s, k, v, batch_size=B, length=P)
            query = q.new_zeros(*real.shape, *q.shape[1:])
            query[real] = q
            out = F.scaled_dot_product_attention(
                query.transpose(1, 2),
                cache.keys[a:b, :, s:],
                cache.values[a:b, :, s:],
                attn_mask=mask,
                scale=self.scaling,
                enable_gqa=True,
            )
            return out.transpose(1, 2)[real]

        hidden = self._hidden(prompt_ids[a:b, s:][real], positions[a:b, s:][real], attend)
        return self._logits(hidden[real.sum(-1).cumsum(0) - 1])

    def _hidden(self, ids: Tensor, positions: Tensor, attend: Callable[..., Tensor]) -> Tensor:
        """The decoder layers on T tokens (ids and positions (T,)) → (T, hidden) before the final norm.
        attend(cache layer, q (T, Hq, D), k, v (T, Hkv, D)) stores k, v and returns the attention (T, Hq, D)."""
        D, n_q, n_qk = self.head_dim, self.n_heads, self.n_heads + self.n_kv_heads
        cos, signed_sin = self.cos[positions][:, None], self.signed_sin[positions][:, None]
        x = F.embedding(ids, self.embedding)
        for layer, cache in zip(self.layers, self.cache_layers):
            qkv = F.linear(_rms_norm(x, *layer.input_norm), *layer.qkv).view(len(x), -1, D)
            qk = qkv[:, :n_qk]
            # rotate_half(x)·sin = cat(-x2, x1)·sin = cat(x2, x1)·cat(-sin1, sin2), bit for bit, one op fewer.
            qk = qk * cos + torch.cat((qk[..., D // 2 :], qk[..., : D // 2]), dim=-1) * signed_sin
            attention = attend(cache, qk[:, :n_q], qk[:, n_q:], qkv[:, n_qk:])
            x = x + F.linear(attention.reshape(len(x), -1), *layer.o)
            h = _rms_norm(x, *layer.post_norm)
            x = x + F.linear(layer.act(F.linear(h, *layer.gate)) * F.linear(h, *layer.up), *layer.down)
        return x

    def _logits(self, hidden: Tensor) -> Tensor:
        return F.linear(_rms_norm(hidden, *self.norm), *self.lm_head).float()


def _row_groups(mask: Tensor, max_groups: int = ATTENTION_GROUPS) -> list[tuple[int, int, int]]:
    """Contiguous row ranges (start, end) of mask (N, L), each with the first column any of its rows attends to.

    Attention on CPU streams the whole cache from memory; columns that every row of a group masks
    out would add exact zeros at the cost of reading them. The rows are sorted by prompt length
    (``_Stepper``), so neighbours share most of their padding. Unsorted rows are still correct.
    """
    N = mask.shape[0]
    n = max(1, min(ATTENTION_GROUPS, max_groups, N // ATTENTION_GROUP_MIN_ROWS))
    bounds = [round(i * N / n) for i in range(n + 1)]
    first = mask.int().argmax(-1)  # first attended column of each row
    starts = torch.stack([first[a:b].min() for a, b in zip(bounds, bounds[1:])]).tolist()
    return list(zip(bounds, bounds[1:], starts))


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """The float mask SDPA makes of a boolean one (0 where True, -inf where False), made once per
    step instead of in each layer's (and each group's) call."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    # HF's x · rsqrt(mean(x²) + eps) · weight in one op (one pass over x instead of six).
    return F.rms_norm(x, weight.shape, weight, eps)


def _rotary_tables(rotary: nn.Module, capacity: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and signed sin (sin with its first half negated) for positions 0..capacity-1, as
    HF's default rotary computes them per step: from the module's own inv_freq and attention_scaling,
    in float32, then cast to the model's dtype."""
    inv_freq = rotary.inv_freq.float()
    freqs = torch.arange(capacity, device=inv_freq.device)[:, None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * rotary.attention_scaling, emb.sin() * rotary.attention_scaling
    half = sin.shape[-1] // 2
    return cos.to(dtype), torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).to(dtype)


def _fuse(layer: nn.Module) -> _Layer:
    # Only q/k/v are stacked, a copy of a sixth of the weights or less: it puts q and k side by side
    # for one rotary op. Stacking gate/up too measured no faster and would copy two thirds of them.
    mlp = layer.mlp
    return _Layer(
        input_norm=(layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon),
        qkv=_stack(_attention_projections(layer)[:3]),
        o=(layer.self_attn.o_proj.weight, layer.self_attn.o_proj.bias),
        post_norm=(layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon),
        gate=(mlp.gate_proj.weight, mlp.gate_proj.bias),
        up=(mlp.up_proj.weight, mlp.up_proj.bias),
        down=(mlp.down_proj.weight, mlp.down_proj.bias),
        act=mlp.act_fn,
    )


def _stack(linears: Sequence[nn.Linear]) -> Linear:
    weight = torch.cat([m.weight for m in linears])
    if all(m.bias is None for m in linears):
        return weight, None
    return weight, torch.cat([m.weight.new_zeros(m.out_features) if m.bias is None else m.bias for m in linears])


def _attention_projections(layer: nn.Module) -> tuple[nn.Module, ...]:
    a = layer.self_attn
    return a.q_proj, a.k_proj, a.v_proj, a.o_proj


def _mlp_projections(layer: nn.Module) -> tuple[nn.Module, ...]:
    return layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj
