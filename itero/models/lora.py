"""LoRA adapters through ``peft`` (the optional extra ``lora``), imported only when ``model.lora`` is set.

The adapters sit on the policy as it starts RL (the SFT checkpoint, or the base model): that model is their
*base*, fixed for the whole run. A checkpoint of an adapted policy is peft's adapter folder
(``adapter_config.json`` + ``adapter_model.safetensors``) whose ``base_model_name_or_path`` points at that
base, relative to the folder when the base lies in the same run (a run directory can move). Frozen uses
(reference, evaluation, ``itero eval``) load base + adapters merged into a plain model; the reference of
the live policy is the same model with its adapters disabled, so no second copy is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from itero.model_config import LoraSettings
from itero.schema import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_MISSING = "model.lora needs the peft package: pip install 'itero[lora]' (or pip install peft), or set model.lora=null"


def require_peft() -> None:
    """A one-line error (at preflight, before anything is written) when peft is not installed."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError(_MISSING) from None


def apply_lora(model: torch.nn.Module, settings: LoraSettings, seed: int = 0) -> torch.nn.Module:
    """``model`` wrapped in a peft model with fresh adapters: only their parameters require gradients.
    peft replaces the linear layers *in place*, so anything holding ``model`` runs the adapted model
    too. The adapters' initial values (lora_A random, lora_B zero: the adapted model equals ``model``)
    come from ``seed``, so a resumed run starts its adapters where an uninterrupted one did; they are
    kept for ``reset_adapters``."""
    require_peft()
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    peft_model.itero_initial_adapters = {k: v.detach().clone() for k, v in adapter_state(peft_model).items()}
    return peft_model


def check_supported(strategy: str, backend: str) -> None:
    """peft present, and a setup LoRA runs in: adapters are data-parallel (ddp), not sharded."""
    require_peft()
    if strategy != "ddp":
        raise ConfigError(
            f"model.lora trains adapters replicated on every process; distributed.strategy={strategy} shards "
            "the model: use distributed.strategy=ddp (the frozen base is not sharded), or model.lora=null"
        )


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights as peft saves them (keys without the adapter name)."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def reset_adapters(model: torch.nn.Module) -> None:
    """Adapters back to their initial values: the policy equals its base again."""
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, model.itero_initial_adapters)


def base_layers(model: torch.nn.Module, state: dict) -> tuple[torch.nn.Module, dict]:
    """The adapted ``model``'s inner model and a full-weight ``state`` renamed to its keys (peft moved
    each adapted linear's weight to ``<name>.base_layer``), with the adapters' current values added so
    that loading it leaves them as they are."""
    inner = model.get_base_model()
    own = inner.state_dict()
    renamed = {k.replace(".base_layer", ""): k for k in own if "lora_" not in k}
    state = {renamed.get(k, k): v for k, v in state.items()}
    state.update({k: v for k, v in own.items() if "lora_" in k})
    return inner, state


def is_adapter_folder(path: str | Path) -> bool:
    return (Path(path).expanduser() / ADAPTER_CONFIG).exists()


def base_name(path: str | Path) -> str:
    """A model's name as adapter folders compare it: a resolved folder, or a hub name as given."""
    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else str(path)


def adapter_base(folder: str | Path) -> str:
    """The model an adapter folder was trained on: a hub name, or a folder (relative to ``folder``)."""
    folder = Path(folder).expanduser()
    base = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    local = folder / base
    return str(local.resolve()) if not os.path.isabs(base) and local.exists() else base


def base_pointer(base: str, folder: Path, run: Path | None) -> str:
    """How an adapter folder at ``folder`` names ``base``: relative to it when the base lies inside the
    ``run`` directory (the SFT checkpoint, the tiny base), so the run can be moved or copied whole;
    an absolute folder or a hub name otherwise."""
    path = Path(base).expanduser()
    if not path.exists():
        return base  # a hub name
    path = path.resolve()
    if run is not None and path.is_relative_to(Path(run).resolve()):
        return os.path.relpath(path, Path(folder).resolve())
    return str(path)


def point_to_base(path: Path, base: str, final: Path | None = None, run: Path | None = None) -> None:
    """Set the adapter folder's ``base_model_name_or_path`` to ``base`` as seen from ``final`` (where
    the folder will be once the caller's atomic rename is done; ``path`` by default)."""
    config_file = Path(path) / ADAPTER_CONFIG
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_pointer(base, final or path, run)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))


def load_adapters_into(model: torch.nn.Module, folder: str | Path) -> None:
    """The adapter weights saved in ``folder`` into the adapted ``model``, in place (its parameter
    objects, which the optimizer holds, stay)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(model, state)
    if result.unexpected_keys:
        raise RuntimeError(f"adapters in {folder} do not match the model: unexpected {sorted(result.unexpected_keys)}")


def merge_adapters(base: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """A plain model: ``base`` (the adapter folder's base, loaded) with the folder's adapters merged in,
    for frozen and eval use and for ``itero export``."""
    require_peft()
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(folder)).merge_and_unload()


class AdaptersDisabled(torch.nn.Module):
    """The adapted policy seen with its adapters off, i.e. its base model: the reference and "initial"
    log-probs without loading a second copy. The policy is not a submodule, so freezing or moving this
    view leaves the trained policy as it is."""

    def __init__(self, peft_model: torch.nn.Module):
        super().__init__()
        object.__setattr__(self, "policy", peft_model)

    @property
    def config(self):
        return self.policy.config

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def parameters(self, recurse: bool = True):  # where callers look up the device
        return self.policy.parameters(recurse)

    def requires_grad_(self, requires_grad: bool = True):  # the view is frozen by construction, not the policy
        return self

    def get_input_embeddings(self):
        return self.policy.get_input_embeddings()

    def forward(self, *args, **kwargs):
        was_training = self.policy.training
        self.policy.train(self.training)  # compute_logprobs switches the view, not the policy, to eval
        try:
            with self.policy.disable_adapter():
                return self.policy(*args, **kwargs)
        finally:
            self.policy.train(was_training)
