"""The run directory: atomic writes, stage completion, and refusing to mix two configs in one run.

Every file is written under a temporary name and renamed when complete, so a file that exists is
whole; a stage is done exactly when its output exists.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from itero.errors import IteroError


class RunDirError(IteroError, RuntimeError):
    pass


def _writes() -> bool:
    """Only rank 0 writes the run directory; other data-parallel ranks read what it wrote."""
    from itero.distributed import current

    return current().is_main


_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST)


@contextmanager
def reported_write(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """A failed write of ``path`` as one line naming it (a full disk above all), the partial ``tmp`` removed."""
    try:
        yield
    except OSError as err:
        if tmp is not None and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            tmp.unlink(missing_ok=True)
        if err.errno in _FULL:
            raise RunDirError(
                f"disk full while writing {path}: free some space (or write the run to another disk) and rerun "
                "the same command; finished stages are kept"
            ) from None
        if err.errno in _DENIED:
            raise RunDirError(f"cannot write {path} ({err.strerror}): give a writable folder") from None
        raise


def check_writable(path: Path, option: str = "logging.run_dir") -> None:
    """``path`` is, or can be made, a writable folder: refused before anything runs, not at the first save."""
    path = Path(path).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"cannot write {path}: {existing} is a file, not a folder; set {option} to a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(
            f"cannot write {path}: {existing} is not writable (permissions or a read-only disk); "
            f"set {option} to a writable folder"
        )


def atomic_write_text(path: Path, text: str) -> None:
    if not _writes():
        return
    tmp = path.with_name(path.name + ".tmp")
    with reported_write(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_torch_save(path: Path, obj: Any) -> None:
    if not _writes():
        return
    tmp = path.with_name(path.name + ".tmp")
    with reported_write(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        # the checksum beside the file (load_stage then notices damage a loader would not, a flipped
        # byte), written first: the file appearing marks its stage done, so it must come last
        atomic_write_text(_checksum_file(path), _sha256(tmp) + "\n")
        os.replace(tmp, path)


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only when the block completes."""
    if not _writes():  # a non-writing rank runs the block into a scratch folder that is thrown away
        scratch = Path(tempfile.mkdtemp(prefix="itero-rank-"))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with reported_write(path, tmp):
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)


def _damaged(path: Path, err: Exception) -> RunDirError:
    return RunDirError(
        f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]}): the file is damaged; delete it and "
        "rerun the same command, the stage that wrote it is recomputed from its inputs"
    )


def read_json(path: Path) -> Any:
    """A run file written by ``atomic_write_json``; a damaged one is reported with how to recover."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise _damaged(path, err) from None


def load_stage(path: Path) -> Any:
    """A stage's saved batch (``torch.save``): a truncated or damaged file (or one whose checksum, written
    beside it by ``atomic_torch_save``, no longer matches) is reported with its path and the recovery
    instead of a traceback from deep inside the unpickler."""
    checksum = _checksum_file(path)
    if checksum.exists() and path.exists() and _sha256(path) != checksum.read_text().strip():
        raise _damaged(path, ValueError(f"its sha256 differs from {checksum.name}"))
    try:
        return torch.load(path, weights_only=False)
    except (RuntimeError, EOFError, ValueError, OSError, ImportError, AttributeError) as err:
        raise _damaged(path, err) from None


# Keys that change how a run is shown, not what it computes: a run resumes across a change of them.
# (Thread counts and --debug are command-line options, not config keys, so they never count.)
NO_RESULT_KEYS = frozenset(
    {
        "logging.progress",
        "logging.trackers",
        "logging.project",
        "logging.mlflow_uri",
        "logging.tracker_samples",
    }
)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _result_keys(config_text: str) -> dict[str, Any]:
    import yaml

    return {k: v for k, v in _flat(yaml.safe_load(config_text) or {}).items() if k not in NO_RESULT_KEYS}


def config_sha(config_text: str) -> str:
    """A short hash of what a config computes (``NO_RESULT_KEYS`` left out): equal for configs that
    give the same results. Stages record it; ``config.history/<sha>.yaml`` holds each replaced config."""
    canonical = json.dumps(_result_keys(config_text), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def config_differences(old_text: str, new_text: str) -> list[str]:
    """``key: old -> new`` for every key whose value differs and that changes results."""
    old, new = _result_keys(old_text), _result_keys(new_text)
    missing = "(unset)"
    return [
        f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, missing) != new.get(k, missing)
    ]


def prepare_run_dir(
    path: Path,
    config_text: str,
    *,
    force: bool = False,
    new: bool = False,
    upgrade: Callable[[str], str] = lambda text: text,
) -> Path:
    """Create or reopen ``path`` for a run of ``config_text``; returns the directory to use.

    Same config (up to ``NO_RESULT_KEYS``): resume. Different config: refused with the keys that
    differ, unless ``force`` (continue this run with the new config; the old one is kept as
    ``config.history/<sha>.yaml``, the name each stage's ``provenance.json`` records) or ``new`` (a
    fresh sibling directory). ``upgrade`` rewrites the saved config the way this version dumps one
    (``config.upgraded_config_text``), so keys moved or added since it was written are no difference.
    """
    config_file = path / "config.yaml"
    if new and config_file.exists():
        k = 2
        while (path.parent / f"{path.name}-{k}").exists():
            k += 1
        path = path.parent / f"{path.name}-{k}"
        config_file = path / "config.yaml"
    if config_file.exists():
        old = config_file.read_text()
        changes = config_differences(upgrade(old), config_text)
        if changes and not force:
            shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
            raise RunDirError(
                f"{path} holds a run with a different config ({shown}): use the same config to resume it, "
                "--force to continue it with the new one (the old is kept in config.history/), "
                "or --new to start a fresh run beside it"
            )
        if config_sha(old) != config_sha(config_text):  # the stages done so far name the old text's sha
            atomic_write_text(path / "config.history" / f"{config_sha(old)}.yaml", old)
    atomic_write_text(config_file, config_text)
    return path
