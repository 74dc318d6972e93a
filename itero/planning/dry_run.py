"""`itero train CONFIG --dry-run`: validate, print the stage plan and the memory estimate; no run.

Nothing here loads a model or touches a run directory. The run-time checks (data files, model
folders) are tried too, but a failure is a warning: a recipe written for a cluster may name files
that only exist there.
"""

from __future__ import annotations

from itero.config import load_config
from itero.planning.memory import fits, format_memory
from itero.planning.memory_config import estimate_for_config
from itero.planning.plan import format_plan, stage_plan


def dry_run(config_path, overrides=()) -> tuple[str, list[str]]:
    """(report text, warnings). Raises ConfigError for an invalid config, as ``itero train`` would."""
    from itero.models.loading import ModelNotFoundError
    from itero.runtime import preflight
    from itero.tasks.jsonl import DataFileError

    cfg = load_config(config_path, list(overrides))
    warnings: list[str] = []
    pool = None
    try:
        pool = len(preflight(cfg).train)
    except (DataFileError, ModelNotFoundError, OSError, ValueError) as err:
        warnings.append(f"run-time check failed (fine for a dry run; fix it where the run will happen): {err}")
    a, g = cfg.algorithm, cfg.generation
    header = (
        f"dry run of {config_path or 'the default config'}: config valid\n"
        f"  algorithm {a.name}, model {cfg.model.path or 'tiny (built locally)'} ({cfg.model.dtype}), "
        f"generation backend {getattr(g, 'backend', 'hf')}, {cfg.loop.iterations} iterations"
    )
    parts = [header, format_plan(stage_plan(cfg, pool), cfg)]
    est, notes = estimate_for_config(cfg)
    if est is None:
        parts.append("memory per GPU: not estimated\n" + "\n".join(f"  note: {n}" for n in notes))
    else:
        parts.append(format_memory(est))
        warnings += fits(est, cfg.distributed.gpu_memory_gb)
    return "\n\n".join(parts), warnings
