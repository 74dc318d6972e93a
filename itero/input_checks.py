"""Checks of a run's input that need more than the config: the model folders, the prompts' lengths
against the model's context, and warnings for input that is legal but suspicious. ``preflight`` runs
them before the run directory is touched, so a refused run has written nothing."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from itero.models.loading import (
    check_model_path,
    context_length,
    has_trained_score_head,
    load_tokenizer,
    read_model_config,
)
from itero.schema import ConfigError
from itero.tracking import progress


def is_local(name_or_path: str) -> bool:
    return (Path(name_or_path).expanduser() / "config.json").exists()


def check_models(cfg) -> tuple[object, int | None]:
    """Every model folder the run names, readable and consistent; returns the policy's tokenizer and context."""
    from itero.algorithms import ALGORITHMS

    named = {
        role: source
        for role, source in ALGORITHMS[cfg.algorithm.name].models_needed(cfg.algorithm).items()
        if source not in ("previous", "initial") and not source.startswith("run:")  # a folder the user named
    }
    for source in named.values():
        check_model_path(source)
    if cfg.reward.name == "model":
        check_reward_model(cfg.reward.model_path, "reward.model_path")
    if cfg.model.path is None:  # the tiny model, built with the character tokenizer
        from itero.models.tiny import build_char_tokenizer

        tokenizer, context = build_char_tokenizer(), cfg.model.tiny.max_position_embeddings
    else:
        tokenizer = load_tokenizer(cfg.model.path)  # also checks config, weights and that the ids fit the vocabulary
        context = model_context(cfg.model.path)
    check_same_tokenizer(named, tokenizer)
    return tokenizer, context


def check_same_tokenizer(named: dict[str, str], tokenizer) -> None:
    """A model whose log-probs score the policy's token ids (a teacher, a DPO model) must read them as
    the policy does; the critic is left out, as a reward model folder may start it."""
    for role, source in named.items():
        if role != "critic" and load_tokenizer(source).get_vocab() != tokenizer.get_vocab():
            raise ConfigError(
                f"the algorithm's {role} model {source} does not share the policy's tokenizer: its log-probs "
                "would score other tokens; give a model with the policy's tokenizer"
            )


def model_context(name_or_path: str) -> int | None:
    if is_local(name_or_path):
        return context_length(read_model_config(name_or_path))
    from transformers import AutoConfig

    return context_length(AutoConfig.from_pretrained(name_or_path).to_dict())


def check_reward_model(path: str, key: str) -> None:
    check_model_path(path)
    if is_local(path) and not has_trained_score_head(path):
        progress.warn(
            f"{key}={path} is a causal LM, not a reward model (no trained score head): its scores come from "
            "a randomly initialised head; train one with `itero train-rm` and give its --out folder"
        )


def check_prompts(task, tokenizer, context: int | None, max_new_tokens: int, where: str) -> None:
    """The task's train and test prompts against the model's context (``check_lengths``)."""
    if context is None:
        return
    problems = [*task.train, *task.test]
    ids = tokenizer([task.render(p) for p in problems], add_special_tokens=False)["input_ids"] if problems else []
    n_train = len(task.train)
    names = [f"train problem {i + 1}" if i < n_train else f"test problem {i - n_train + 1}" for i in range(len(ids))]
    check_lengths([len(x) for x in ids], names, context, max_new_tokens, where)


def check_lengths(
    lengths: list[int],
    names: list[str],
    context: int | None,
    max_new_tokens: int,
    where: str,
    key: str = "generation.max_new_tokens",
    refuse: bool = True,
) -> None:
    """A prompt as long as the model's context is refused (with ``refuse``, else warned about); one that
    leaves less than ``max_new_tokens`` of it is warned about (itero never truncates a prompt)."""
    if context is None:
        return
    for name, n in zip(names, lengths):
        if n >= context and refuse:
            raise ConfigError(
                f"{where}: {name} is {n:,} tokens, the model's context is {context:,}; shorten or drop it"
            )
    cut = [n for n in lengths if n + max_new_tokens > context]
    if cut:
        progress.warn(
            f"{where}: {len(cut)} of {len(lengths)} prompts (longest {max(cut)} tokens) leave less than "
            f"{key}={max_new_tokens} of the model's {context}-token context: generation runs past "
            "the positions it was trained on"
        )


def warn_suspicious_task(task, where: str) -> None:
    """Conflicting golds for one prompt, and test problems that are also trained on."""
    golds = defaultdict(set)
    for p in task.train:
        golds[p.prompt].add(p.answer)
    conflicting = [(prompt, answers) for prompt, answers in golds.items() if len(answers) > 1]
    if conflicting:
        prompt, answers = conflicting[0]
        progress.warn(
            f"{where}: {len(conflicting)} prompts have conflicting gold answers (e.g. {prompt[:60]!r}: "
            f"{' vs '.join(repr(a) for a in sorted(answers)[:3])}); one of each is graded wrong"
        )
    overlap = {p.prompt for p in task.test} & set(golds)
    if overlap:
        progress.warn(
            f"{where}: {len(overlap)} of {len(task.test)} test problems are also in the training split "
            f"(e.g. {next(iter(sorted(overlap)))[:60]!r}): test accuracy overstates what the model learnt"
        )
