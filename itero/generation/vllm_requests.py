"""The vLLM backend's pure parts, tested on CPU with stand-in outputs: our ``SamplingParams`` as vLLM
request arguments, continuation requests within each prefix's budget, vLLM outputs as a
``RolloutBatch``, and the LoRA request bookkeeping (``generation/vllm.py`` runs the engine)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from itero.batch import RolloutBatch
from itero.generation.base import SamplingParams, continuation_budgets
from itero.generation.hf import _left_pad


def sampling_params_to_vllm(params: SamplingParams, *, logprobs: bool = True) -> dict:
    """Keyword arguments for ``vllm.SamplingParams`` that sample as our ``SamplingParams`` say."""
    greedy = params.temperature == 0
    return dict(
        n=params.n,
        temperature=float(params.temperature),
        # Greedy ignores truncation and seeds; neutral values also keep vLLM off its slower
        # per-request-generator path for greedy rows.
        top_p=1.0 if greedy else float(params.top_p),
        top_k=-1 if greedy or params.top_k == 0 else int(params.top_k),
        max_tokens=int(params.max_new_tokens),
        stop=list(params.stop) or None,
        include_stop_str_in_output=True,  # the hf backend keeps the token that completed a stop string
        # vLLM matches stop strings on detokenized text; otherwise we decode with our own tokenizer.
        detokenize=bool(params.stop),
        seed=None if greedy else params.seed,
        logprobs=0 if logprobs else None,  # 0: just the sampled token's log-prob
    )


def build_requests(
    prompts: Sequence[Sequence[int]], params: SamplingParams, *, per_request_seeds: bool = True
) -> tuple[list[dict], list[dict]]:
    """One TokensPrompt and one SamplingParams-kwargs dict per prompt.

    vLLM seeds the j-th of a request's n samples with seed + j, so prompt i gets seed + i·n and no two
    rows share a random stream. ``per_request_seeds=False`` leaves sampling to the engine's own seed:
    faster (vLLM samples seeded requests one by one) but not reproducible call by call.
    """
    base = sampling_params_to_vllm(params)
    token_prompts = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
    if base["seed"] is None or not per_request_seeds:
        return token_prompts, [dict(base, seed=None) for _ in prompts]
    return token_prompts, [dict(base, seed=base["seed"] + i * params.n) for i in range(len(prompts))]


def continuation_requests(
    prefixes: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    prompt_lengths: Sequence[int] | None = None,
    per_request_seeds: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Requests that continue each prefix (prompt ids + a partial response, VinePPO's states).

    With ``prompt_lengths`` (the prompt part of each prefix) a continuation may only use what the
    partial response left of ``max_new_tokens``, so MC rollouts end where a full sample would have.
    """
    token_prompts, kwargs = build_requests(prefixes, params, per_request_seeds=per_request_seeds)
    if prompt_lengths is None:
        return token_prompts, kwargs
    for i, budget in enumerate(continuation_budgets(prefixes, prompt_lengths, params.max_new_tokens)):
        kwargs[i]["max_tokens"] = budget
    return token_prompts, kwargs


def outputs_to_batch(
    outputs: Sequence,
    prompts: Sequence[Sequence[int]],
    n: int,
    *,
    pad_token_id: int,
    decode: Callable[[list[list[int]]], list[str]] | None = None,
    prompt_texts: Sequence[str] | None = None,
    answers: Sequence[str] | None = None,
) -> RolloutBatch:
    """vLLM ``RequestOutput``s (one per prompt, n completions each) as the hf backend's RolloutBatch.

    Same layout: rows i·n .. i·n+n-1 belong to prompt i (group_ids = i), prompts left-padded,
    responses right-padded with pad_token_id, truncated where the finish reason is "length".
    ``decode`` turns response ids into texts as the hf backend does (our tokenizer, special tokens
    skipped); None keeps the engine's texts. Tensors are on the CPU, where vLLM returns its outputs.
    """
    if len(outputs) != len(prompts):
        raise ValueError(f"{len(outputs)} engine outputs for {len(prompts)} prompts")
    prompt_rows, response_rows, logprob_rows, truncated, texts = [], [], [], [], []
    for i, (out, prompt) in enumerate(zip(outputs, prompts)):
        engine_prompt = getattr(out, "prompt_token_ids", None)
        if engine_prompt is not None and list(engine_prompt) != list(prompt):
            raise ValueError(f"engine output {i} is for another prompt: outputs must come in request order")
        completions = sorted(out.outputs, key=lambda c: getattr(c, "index", 0))
        if len(completions) != n:
            raise ValueError(f"prompt {i} has {len(completions)} completions, expected n={n}")
        for c in completions:
            if c.finish_reason not in ("stop", "length"):
                raise ValueError(f"prompt {i}: unexpected finish_reason {c.finish_reason!r} (aborted request?)")
            ids = [int(t) for t in c.token_ids]
            prompt_rows.append(list(prompt))
            response_rows.append(ids)
            logprob_rows.append(None if c.logprobs is None else [float(d[t].logprob) for d, t in zip(c.logprobs, ids)])
            truncated.append(c.finish_reason == "length")
            texts.append(c.text)
    prompt_ids, prompt_mask = _left_pad(prompt_rows, pad_token_id, "cpu")
    lengths = torch.tensor([len(r) for r in response_rows], dtype=torch.long)
    width = max(int(lengths.max()), 1)
    response_ids = torch.full((len(response_rows), width), pad_token_id, dtype=torch.long)
    sampler_logprobs = torch.zeros(len(response_rows), width, dtype=torch.float32)
    for row, (ids, lps) in enumerate(zip(response_rows, logprob_rows)):
        response_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        if lps is not None:
            sampler_logprobs[row, : len(lps)] = torch.tensor(lps, dtype=torch.float32)
    has_logprobs = all(lps is not None for lps in logprob_rows)
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=response_ids,
        response_mask=torch.arange(width)[None, :] < lengths[:, None],
        group_ids=torch.arange(len(prompts)).repeat_interleave(n),
        truncated=torch.tensor(truncated, dtype=torch.bool),
        prompt_texts=[t for t in (prompt_texts or []) for _ in range(n)],
        response_texts=decode(response_rows) if decode is not None else texts,
        answers=[a for a in (answers or []) for _ in range(n)],
        sampler_logprobs=sampler_logprobs if has_logprobs else None,
    )


# max_lora_rank values vLLM accepts (vllm/config/lora.py)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_engine_kwargs(rank: int) -> dict:
    """Engine arguments that let it serve one adapter of rank ``rank`` at a time."""
    fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fitting:
        raise ValueError(f"model.lora.r={rank}: vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}")
    return {"enable_lora": True, "max_lora_rank": fitting[0], "max_loras": 1}


class AdapterRequests:
    """The LoRA request arguments for the adapter folder the engine should serve: a new integer id for
    every new folder (vLLM would serve a cached adapter under a reused id), None for the bare base."""

    def __init__(self):
        self.folder: str | None = None
        self.serial = 0

    def args(self, folder) -> dict | None:
        if folder is None:
            self.folder = None
            return None
        if str(folder) != self.folder:
            self.folder, self.serial = str(folder), self.serial + 1
        return {"lora_name": f"itero-{self.serial}", "lora_int_id": self.serial, "lora_path": self.folder}
