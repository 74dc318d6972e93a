"""`itero export RUN_OR_CHECKPOINT OUT`: a plain ``save_pretrained`` folder (weights + tokenizer) that
any HF or vLLM user loads without itero or peft: a LoRA checkpoint's adapters are merged into their base
(``merge_and_unload``); a full-weight checkpoint is saved again as it is."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from itero.errors import IteroError


def last_checkpoint(run: Path) -> Path:
    """The run's latest trained checkpoint: the highest ``iter_<k>/checkpoint``, else the SFT one."""
    done = [(int(m.group(1)), d) for d in run.glob("iter_*") if (m := re.fullmatch(r"iter_(\d+)", d.name))]
    for _, d in sorted(done, reverse=True):
        if (d / "checkpoint").is_dir():
            return d / "checkpoint"
    if (run / "sft" / "checkpoint").is_dir():
        return run / "sft" / "checkpoint"
    raise FileNotFoundError(f"{run} has no checkpoint yet (iter_<k>/checkpoint or sft/checkpoint)")


def export(source: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Write the merged model of ``source`` (a run directory or a checkpoint folder) to ``out``;
    returns the checkpoint exported. ``out`` appears complete or not at all."""
    from itero.models.loading import load_model, load_tokenizer

    source, out = Path(source), Path(out)
    checkpoint = last_checkpoint(source) if (source / "config.yaml").exists() else source
    if out.exists() and any(out.iterdir()):
        raise IteroError(f"{out} exists and is not empty: give a new folder")
    tokenizer = load_tokenizer(str(checkpoint))  # checks the folder (and an adapter folder's base)
    model = load_model(str(checkpoint), dtype=dtype)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    return checkpoint


def add_arguments(p) -> None:
    p.add_argument(
        "source", metavar="RUN_OR_CHECKPOINT", help="a run directory (its last checkpoint) or a checkpoint folder"
    )
    p.add_argument("out", metavar="OUT", help="a new folder for the merged save_pretrained model and its tokenizer")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="weights' dtype")


def run(args) -> int:
    checkpoint = export(args.source, args.out, args.dtype)
    print(f"exported {checkpoint} to {args.out}")
    return 0
