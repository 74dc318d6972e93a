"""VinePPO's Monte-Carlo rollouts with the run's own generator and reward (``algorithms/vineppo.py`` gets the
function and never touches a generator). Data parallel like generation: state chunk i on rank i mod W,
each chunk seeded by its offset, so the gathered rewards equal the one-process ones."""

from __future__ import annotations

import dataclasses

import torch

from itero import distributed
from itero.batch import RolloutBatch
from itero.tracking import progress


def mc_rollout(rt, batch: RolloutBatch, k: int, K: int):
    """VinePPO's rollout function: K continuations of each state with the policy's sampling settings,
    each within what is left of its response's token budget; (N, K) rewards of prefix + continuation."""
    counted = {"tokens": 0}  # continuation tokens generated, for the tokens axis of a comparison

    def rollout(states: list[tuple[int, int]]) -> torch.Tensor:
        params = dataclasses.replace(rt.sampling_params(seed=rt.cfg.loop.seed * 100_003 + k + 50_000), n=K)
        parts, chunk, dist = [], rt.cfg.generation.prompts_per_call, distributed.current()
        with progress.stage(
            f"[iter {k}] MC values, {K} rollouts per state", len(states), rt.cfg.logging.progress
        ) as advance:
            for s in range(0, len(states), chunk):
                if not dist.mine(s // chunk):  # data parallel as generation: chunk i on rank i mod W, seeded by offset
                    continue
                parts.append(
                    (s, _rollout_chunk(states[s : s + chunk], dataclasses.replace(params, seed=params.seed + s)))
                )
                advance(len(states[s : s + chunk]) * dist.world_size)
        parts = sorted((p for rank_parts in dist.gather_objects(parts) for p in rank_parts), key=lambda p: p[0])
        counted["tokens"] = sum(dist.gather_objects(counted["tokens"]))
        rewards = [r for _, chunk_rewards in parts for r in chunk_rewards]
        return torch.tensor(rewards, dtype=torch.float32).view(len(states), K)

    def _rollout_chunk(part: list[tuple[int, int]], params) -> list[float]:
        prefixes = [batch.response_ids[row, :n].tolist() for row, n in part]
        prompts = [batch.prompt_ids[row][batch.prompt_mask[row]].tolist() + p for (row, _), p in zip(part, prefixes)]
        lengths = [len(p) - n for p, (_, n) in zip(prompts, part)]
        out = rt.generator.continue_from(prompts, params, prompt_lengths=lengths).to("cpu")
        counted["tokens"] += int(out.response_lengths.sum())
        texts, answers, prompt_texts = [], [], []
        for i in range(out.batch_size):
            row, n = part[i // K]
            cont = out.response_ids[i][out.response_mask[i]].tolist()
            texts.append(rt.tokenizer.decode(prefixes[i // K] + cont, skip_special_tokens=True))
            answers.append(batch.answers[row])
            prompt_texts.append(batch.prompt_texts[row] if batch.prompt_texts else "")
        return rt.reward.grade(texts, answers, prompts=prompt_texts)[0]

    rollout.counted = counted
    return rollout
