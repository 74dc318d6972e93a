"""Our own batched sampling loop with a KV cache over any HF causal LM (the CPU backend).

Prefill once, then one token per step through the model's own forward and cache API. Why not
``model.generate``: it cannot mix the logits of two models (the "mixp" sampler), and on CPU a third to a
half of its decode time for a small model goes to copying the KV cache (``DynamicCache``
concatenates every step), and a tenth to ``torch.multinomial``. Here full-attention cache layers write into buffers sized for the
whole generation, sampling inverts the CDF, and finished rows are dropped from the batch and the
caches once they are a sizeable fraction of it (benchmarks/bench_generation.py measures the gain).
Qwen2 and Llama models skip the HF modules altogether (``fast_decode``); any other model runs
through its own forward.

Positions follow ``itero.batch.position_ids`` (left padding ignored) and the attention mask is
``cat(prompt_mask, ones)``, exactly what the learner feeds, so sampler and learner log-probs agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor

from itero.batch import RolloutBatch, position_ids
from itero.generation.base import SamplingParams, continuation_budgets
from itero.generation.sampling import StopStrings, sample_next
from itero.generation.stepper import Mixture, Stepper

# Finished rows stay in the batch (their outputs ignored) until they are this fraction of it:
# compacting copies every layer's cache, so doing it for each finished row would cost more than it saves.
COMPACT_FRACTION = 0.25


class HFGenerator:
    """Generator backend over an HF causal LM object shared with the learner."""

    def __init__(self, model, tokenizer, *, batch_size: int | None = None):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of rows or None, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else int(self.eos_token_ids[0])

    def update_weights(self, *args, **kwargs) -> None:
        """Nothing to do: this backend samples with the learner's own model object, so it always has
        the current weights. Present so the loop can call ``update_weights`` on any backend."""

    def load_adapter(self, folder=None, model=None) -> None:
        """Nothing to do: peft put the adapters into the policy's own modules, which this backend samples
        with, so it already runs the adapters the policy holds, whatever folder they were saved in."""

    def sleep(self, level: int = 1) -> None:
        """Nothing to give back: the KV cache lives only inside a generate call, and the weights are the
        policy's own."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        prompt_texts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
        mixture: Mixture | None = None,
    ) -> RolloutBatch:
        _check_request(prompts, params, prompt_texts, answers)
        n = params.n
        rows = [list(p) for p in prompts for _ in range(n)]
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        models = [self.model] + ([mixture.model] if mixture is not None else [])
        size = self.batch_size or len(rows)
        with torch.inference_mode(), _eval_mode(models):
            parts = [
                self._generate_rows(rows[s : s + size], params, generator, mixture, device)
                for s in range(0, len(rows), size)
            ]
        batch = parts[0] if len(parts) == 1 else RolloutBatch.concat(parts, self.pad_token_id)
        # Tensors made under inference_mode cannot enter autograd (the learner's gather over
        # response_ids would raise), so the batch leaves with ordinary copies.
        batch = batch.replace(**{name: getattr(batch, name).clone() for name in batch.tensor_fields()})
        return batch.replace(
            group_ids=torch.arange(len(prompts), device=device).repeat_interleave(n),
            prompt_texts=[t for t in (prompt_texts or []) for _ in range(n)],
            answers=[a for a in (answers or []) for _ in range(n)],
        )

    def continue_from(
        self, prefixes, params: SamplingParams, *, prompt_lengths=None, prompt_texts=None, answers=None
    ) -> RolloutBatch:
        """Continuations of each prefix (``Generator.continue_from``). One decode runs every row to
        ``max_new_tokens``; each is then cut to its own budget (the same random stream as ``generate``)."""
        batch = self.generate(prefixes, params, prompt_texts=prompt_texts, answers=answers)
        if prompt_lengths is None:
            return batch
        budgets = torch.tensor(continuation_budgets(prefixes, prompt_lengths, params.max_new_tokens))
        budgets = budgets.repeat_interleave(params.n).to(batch.response_ids.device)  # (B,)
        lengths = batch.response_lengths
        cut = lengths > budgets
        mask = batch.response_mask & (
            torch.arange(batch.response_ids.shape[1], device=budgets.device) < budgets[:, None]
        )
        kept = [ids[m].tolist() for ids, m in zip(batch.response_ids, mask)]
        return batch.replace(
            response_mask=mask,
            truncated=batch.truncated | cut,
            response_texts=self.tokenizer.batch_decode(kept, skip_special_tokens=True),
        )

    def _generate_rows(self, rows, params, generator, mixture, device) -> RolloutBatch:
        prompt_ids, prompt_mask = _left_pad(rows, self.pad_token_id, device)
        response_ids, sampler_logprobs, lengths, ended = self._decode(
            prompt_ids, prompt_mask, params, generator, mixture
        )
        width = int(lengths.max())
        response_ids, sampler_logprobs = response_ids[:, :width], sampler_logprobs[:, :width]
        texts = self.tokenizer.batch_decode(
            [ids[:n] for ids, n in zip(response_ids.tolist(), lengths.tolist())], skip_special_tokens=True
        )
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=response_ids,
            response_mask=torch.arange(width, device=device)[None, :] < lengths[:, None],
            group_ids=torch.zeros(len(rows), dtype=torch.long, device=device),  # set by generate for the whole request
            truncated=~ended,
            response_texts=texts,
            sampler_logprobs=sampler_logprobs,
        )

    def _decode(self, prompt_ids, prompt_mask, params, generator, mixture):
        """Prefill, then one token per step. Returns response_ids (B, R), sampler_logprobs (B, R),
        lengths (B,) and ended (B,): True where EOS or a stop string ended the row."""
        (B, P), R, device = prompt_ids.shape, params.max_new_tokens, prompt_ids.device
        step = Stepper(self.model, mixture, capacity=P + R)
        attention = prompt_mask.long()
        logits = step.prefill(prompt_ids, prompt_mask)
        response_ids = torch.full((B, R), self.pad_token_id, dtype=torch.long, device=device)
        sampler_logprobs = torch.zeros(B, R, dtype=torch.float32, device=device)
        lengths = torch.zeros(B, dtype=torch.long, device=device)
        ended = torch.zeros(B, dtype=torch.bool, device=device)
        stop = StopStrings(self.tokenizer, params.stop)
        eos = self.eos_token_ids.to(device)
        active = torch.arange(B, device=device)  # rows held in the caches, in cache order
        live = torch.ones(B, dtype=torch.bool, device=device)  # which of those are still generating
        next_pos = position_ids(prompt_mask, 0)[:, -1] + 1
        for t in range(R):
            tokens, logprobs = sample_next(logits, params.temperature, params.top_k, params.top_p, generator)
            rows_live = active[live]
            response_ids[rows_live, t] = tokens[live]
            sampler_logprobs[rows_live, t] = logprobs[live]
            lengths[rows_live] = t + 1
            done = torch.isin(tokens[live], eos)
            if stop:
                done |= stop.hits(response_ids[:, max(0, t + 1 - stop.window) : t + 1][rows_live]).to(device)
            ended[rows_live[done]] = True
            live[live.clone()] = ~done
            n_live = int(live.sum())
            if n_live == 0 or t == R - 1:
                break
            if len(live) - n_live >= COMPACT_FRACTION * len(live):
                keep = live.nonzero().squeeze(-1)
                step.select(keep)
                active, attention, next_pos, tokens, live = (
                    x[keep] for x in (active, attention, next_pos, tokens, live)
                )
            attention = torch.cat([attention, attention.new_ones(len(active), 1)], dim=1)
            logits = step(tokens[:, None], attention, next_pos[:, None])
            next_pos = next_pos + 1
        return response_ids, sampler_logprobs, lengths, ended


def _left_pad(rows: list[list[int]], pad_token_id: int, device) -> tuple[Tensor, Tensor]:
    P = max(len(r) for r in rows)
    prompt_ids = torch.full((len(rows), P), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros(len(rows), P, dtype=torch.bool)
    for i, r in enumerate(rows):
        prompt_ids[i, P - len(r) :] = torch.tensor(r, dtype=torch.long)
        prompt_mask[i, P - len(r) :] = True
    return prompt_ids.to(device), prompt_mask.to(device)


def _eos_token_ids(model, tokenizer) -> Tensor:
    ids = []
    for source in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if source is not None:
            ids.extend([source] if isinstance(source, int) else list(source))
    if not ids:
        raise ValueError("neither the tokenizer nor the model's generation_config defines an eos_token_id")
    return torch.tensor(sorted(set(ids)), dtype=torch.long)


@contextlib.contextmanager
def _eval_mode(models):
    # Dropout must be off while sampling; the learner's train/eval state is restored afterwards.
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, training in zip(models, was_training):
            m.train(training)


def _check_request(prompts, params: SamplingParams, prompt_texts, answers) -> None:
    if not prompts:
        raise ValueError("generate needs at least one prompt")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (empty prompts have no next-token distribution)")
    if params.n < 1 or params.max_new_tokens < 1:
        raise ValueError(f"n and max_new_tokens must be >= 1, got n={params.n}, max_new_tokens={params.max_new_tokens}")
    if params.temperature < 0 or not 0 < params.top_p <= 1 or params.top_k < 0:
        raise ValueError(
            f"need temperature >= 0, 0 < top_p <= 1 and top_k >= 0; got temperature={params.temperature}, "
            f"top_p={params.top_p}, top_k={params.top_k}"
        )
    for name, values in (("prompt_texts", prompt_texts), ("answers", answers)):
        if values is not None and len(values) != len(prompts):
            raise ValueError(f"{name} has {len(values)} entries for {len(prompts)} prompts; give one per prompt")
