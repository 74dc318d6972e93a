"""vLLM backend: one in-process ``vllm.LLM`` per rank, colocated with the learner on its GPU.

The shape is TRL's colocate mode (``GRPOTrainer`` with ``vllm_mode="colocate"``): the engine runs
inside the training process with ``distributed_executor_backend="external_launcher"``, so it joins
the torch.distributed world accelerate / torchrun started, each rank generates for its own prompt
shard, and the engine's model object is in this process, so weight sync is a direct
``model.load_weights(...)`` with no serialisation. TRL and verl reach that model through
``llm.llm_engine.model_executor.driver_worker[.worker].model_runner.model``, a path that moved
between vLLM versions; ``LLM.apply_model(fn)`` (V1: ``collective_rpc("apply_model")`` →
``WorkerBase.apply_model``) is the public way to the same object, so that is what we call.

Targets vLLM >= 0.10.2 (V1 engine): ``logprobs_mode="processed_logprobs"`` arrived in 0.10.2,
``top_k=-1`` disables top-k in every version (0 only in newer ones), and prompts are passed as
``{"prompt_token_ids": [...]}`` (TokensPrompt) since the ``prompt_token_ids=`` argument was removed.

Log-probs. ``sampler_logprobs`` are the engine's, never mixed with the learner's ``old_logprobs``;
with processed_logprobs they are log-softmax(logits / temperature) at the sampled token (of the raw
logits when greedy), exactly what the hf backend returns when top_k / top_p are off (the RL
recipes' setting). With top-k / top-p on they are of the truncated distribution the engine really
sampled from, where the hf backend reports the untruncated one.

LoRA (``model.lora``): the engine keeps the adapters' base weights and serves each adapter checkpoint
as a LoRA request (``enable_lora``; a new ``lora_int_id`` per checkpoint folder, since vLLM caches
adapters by id), with no weight sync. Written against vLLM's documented LoRA API; not verified on a GPU.

The pure parts (request arguments, continuations, outputs to a batch, LoRA requests) are in
``vllm_requests.py``, tested on CPU with stand-in outputs; ``VLLMGenerator`` needs a GPU.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Sequence

import torch

from itero.batch import RolloutBatch
from itero.generation.base import SamplingParams
from itero.generation.hf import _check_request
from itero.generation.vllm_requests import (
    AdapterRequests,
    build_requests,
    continuation_requests,
    lora_engine_kwargs,
    outputs_to_batch,
)
from itero.generation.weight_sync import (
    check_sync,
    gathered_state_dict,
    learner_probe_logprobs,
    prompt_token_logprobs,
    vllm_weight_items,
)

INSTALL_HINT = "pip install 'itero[vllm]' (needs a CUDA GPU)"
# The fixed token sequence whose log-probs show whether a weight sync reached the engine.
PROBE_TEXT = "Question: what is 12 + 7? Answer: 12 + 7 = 19, so the answer is \\boxed{19}."


class VLLMGenerator:
    """Generator backend over an in-process ``vllm.LLM`` (GPU only), with weight sync from the learner.

    ``seed`` seeds the engine; with tensor_parallel_size > 1 every rank of a TP group must pass the
    same seed and the same prompts (TRL uses seed = rank // tensor_parallel_size).
    """

    batch_size = None  # read by the samplers when they build an hf generator for a reference model

    def __init__(
        self,
        model_path: str,
        tokenizer,
        *,
        gpu_memory_utilization: float = 0.5,
        enable_sleep_mode: bool = False,
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        seed: int = 0,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        per_request_seeds: bool = True,
        probe_ids: Sequence[int] | None = None,
        lora_rank: int | None = None,
        **engine_kwargs,
    ):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(f"generation.backend=vllm needs vLLM: {INSTALL_HINT}") from e
        if not torch.cuda.is_available():
            raise RuntimeError(f"vLLM generation needs a CUDA GPU ({INSTALL_HINT}); on CPU use generation.backend=hf")
        self._vllm = vllm
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        self.per_request_seeds = per_request_seeds
        self.enable_sleep_mode = enable_sleep_mode
        self.probe_ids = (
            list(probe_ids) if probe_ids is not None else tokenizer.encode(PROBE_TEXT, add_special_tokens=False)
        )
        if len(self.probe_ids) < 2:
            raise ValueError("the sync probe needs at least 2 tokens")
        _launcher_env()
        if lora_rank is not None:
            engine_kwargs = {**lora_engine_kwargs(lora_rank), **engine_kwargs}
        self.adapters, self._lora_request = AdapterRequests(), None
        self.llm = vllm.LLM(
            model=str(model_path),
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            enable_prefix_caching=enable_prefix_caching,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            distributed_executor_backend="external_launcher",
            logprobs_mode="processed_logprobs",
            **engine_kwargs,
        )
        self._sleeping: set[str] = set()
        self._weights_valid = True  # False after sleep(level=2) until the next sync

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        prompt_texts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
        mixture=None,
    ) -> RolloutBatch:
        if mixture is not None:
            raise NotImplementedError("mixture sampling (mixp) mixes logits token by token: use generation.backend=hf")
        _check_request(prompts, params, prompt_texts, answers)
        requests = build_requests(prompts, params, per_request_seeds=self.per_request_seeds)
        return self._run(*requests, prompts, params.n, prompt_texts, answers)

    def continue_from(
        self, prefixes, params: SamplingParams, *, prompt_lengths=None, prompt_texts=None, answers=None
    ) -> RolloutBatch:
        """n continuations of each prefix (prompt + partial response): the batch's prompt_ids hold the
        whole prefix and its responses the continuations. Prefix caching makes repeats cheap."""
        _check_request(prefixes, params, prompt_texts, answers)
        requests = continuation_requests(
            prefixes, params, prompt_lengths=prompt_lengths, per_request_seeds=self.per_request_seeds
        )
        return self._run(*requests, prefixes, params.n, prompt_texts, answers)

    def _run(self, token_prompts, kwargs, prompts, n, prompt_texts, answers) -> RolloutBatch:
        self.wake_up()
        if not self._weights_valid:
            raise RuntimeError(
                "sleep(level=2) discarded the engine's weights: call sync_weights(model) before generating"
            )
        outputs = self.llm.generate(
            token_prompts,
            sampling_params=[self._vllm.SamplingParams(**k) for k in kwargs],
            use_tqdm=False,
            **self._lora_kwargs(),
        )
        return outputs_to_batch(
            outputs,
            prompts,
            n,
            pad_token_id=self.pad_token_id,
            prompt_texts=prompt_texts,
            answers=answers,
            decode=lambda rows: self.tokenizer.batch_decode(rows, skip_special_tokens=True),
        )

    # ------------------------------------------------------------------ weights
    def sync_weights(self, model: torch.nn.Module, *, check: bool = True) -> dict[str, float]:
        """Load the learner's current weights into the engine (every rank calls this after each update).

        With ``check``, the probe's log-probs are compared before / after and against the learner's
        own (``check_sync``), which raises WeightSyncError when the engine does not serve the new weights.
        """
        self.wake_up()
        before = self.probe_logprobs() if check and self._weights_valid else None
        unloaded = self.llm.apply_model(_loader(vllm_weight_items(gathered_state_dict(model))))[0]
        self._weights_valid = True
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        if unloaded:
            warnings.warn(
                f"the weight sync did not load {len(unloaded)} engine parameters, e.g. {unloaded[:3]}", stacklevel=2
            )
        if not check:
            return {}
        learner = learner_probe_logprobs(model, self.probe_ids)
        return check_sync(before, self.probe_logprobs(), learner=learner)

    update_weights = sync_weights  # the name the loop calls on every backend

    def load_adapter(self, folder, model: torch.nn.Module | None = None, *, check: bool = True) -> dict[str, float]:
        """Serve the LoRA adapters saved in ``folder`` (None: the base alone) over the engine's base
        weights. With ``check`` and the learner's ``model``, the probe's log-probs must match its own."""
        from vllm.lora.request import LoRARequest

        args = self.adapters.args(folder)
        self._lora_request = LoRARequest(**args) if args is not None else None
        if not check or model is None:
            return {}
        return check_sync(None, self.probe_logprobs(), learner=learner_probe_logprobs(model, self.probe_ids))

    def _lora_kwargs(self) -> dict:
        return {"lora_request": self._lora_request} if self._lora_request is not None else {}

    def probe_logprobs(self) -> list[float]:
        """The engine's log-prob of each probe token given the ones before it (prompt_logprobs)."""
        sp = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        out = self.llm.generate(
            [{"prompt_token_ids": self.probe_ids}], sampling_params=sp, use_tqdm=False, **self._lora_kwargs()
        )[0]
        return prompt_token_logprobs(out.prompt_logprobs, self.probe_ids)

    # ------------------------------------------------------------------ memory
    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory while the learner trains: level 1 moves the weights to CPU RAM,
        level 2 drops them (cheaper when a sync follows anyway, as after every update)."""
        if not self.enable_sleep_mode:
            raise RuntimeError("this engine was built without sleep mode (generation.vllm_sleep_mode=true)")
        if level not in (1, 2):
            raise ValueError(f"sleep level must be 1 (weights to CPU) or 2 (weights dropped), got {level}")
        if self._sleeping:
            return
        self.llm.sleep(level=level)
        self._sleeping = {"weights", "kv_cache"}
        self._weights_valid = self._weights_valid and level == 1

    def wake_up(self) -> None:
        if self._sleeping:
            self.llm.wake_up(tags=sorted(self._sleeping))
            self._sleeping = set()


def _loader(weights):
    """The function ``LLM.apply_model`` runs on the engine's model: load, then list what was not loaded."""

    def load(model) -> list[str]:
        loaded = model.load_weights(weights)
        if loaded is None:  # models whose load_weights does not report
            return []
        return sorted(name for name, _ in model.named_parameters() if name not in loaded)

    return load


def _launcher_env() -> None:
    # external_launcher joins the torch.distributed world of the launcher (accelerate / torchrun set
    # these); a plain single-process run gets a world of one, as TRL's colocate mode sets up.
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "localhost")):
        os.environ.setdefault(key, value)
