"""The run directory: atomic writes, stage completion, and refusing to mix two configs in one run.

Every file is written under a temporary name and renamed when complete, so a file that exists is
whole; a stage is done exactly when its output exists.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
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


def atomic_write_text(path: Path, text: str) -> None:
    if not _writes():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def prepare_run_dir(path: Path, config_text: str, *, force: bool = False, new: bool = False) -> Path:
    """Create or reopen ``path`` for a run of ``config_text``; returns the directory to use.

    Same config: resume. Different config: refused, unless ``force`` (continue this run with the
    new config; the old one is kept as config.prev.yaml) or ``new`` (a fresh sibling directory).
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
        if old != config_text:
            if not force:
                raise RunDirError(
                    f"{path} holds a run with a different config (see {config_file}).\n"
                    "  Use the same config to resume it, --force to continue it with the new config, "
                    "or --new to start a fresh run beside it."
                )
            atomic_write_text(path / "config.prev.yaml", old)
    atomic_write_text(config_file, config_text)
    return path
