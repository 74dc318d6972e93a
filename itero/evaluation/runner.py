"""Run benchmarks: greedy and sampled responses per problem, graded, written per benchmark, resumable.

``<out>/eval/<benchmark>.jsonl`` holds every response with its extracted answer and verdict. It is
written atomically when the benchmark is complete, so its existence marks the benchmark finished:
a rerun skips it and recomputes only the metrics from its rows; nothing partial is ever left under
that name. ``results.md`` / ``results.json`` hold the table (benchmark columns + Average).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from itero.evaluation.benchmarks import Benchmark, load_benchmark
from itero.evaluation.metrics import benchmark_metrics, flat_metrics, results_table
from itero.evaluation.templates import Template, load_template
from itero.generation.base import Generator, SamplingParams
from itero.grading import grade_batch, is_equiv
from itero.schema import ConfigError
from itero.tasks.jsonl import read_jsonl
from itero.tracking import progress
from itero.tracking.rundir import RunDirError, atomic_write_json, atomic_write_jsonl, atomic_write_text, read_json


@dataclass(frozen=True)
class EvalSettings:
    n: int = 0  # sampled responses per problem, besides the greedy one; 0 = greedy only (the sources' headline)
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 3000  # the sources' max_tokens_per_call
    template: str = "qwen25-math-cot"
    stop: tuple[str, ...] = ()  # besides the template's own
    data_dir: str | None = None
    limit: int | None = None  # first N problems of each benchmark
    seed: int = 0
    chunk: int = 64  # prompts per generate call (progress granularity)
    grader_workers: int = 1
    extraction: str = "strict"  # grader extraction mode: strict or lenient (see docs/grading.md)

    def check(self) -> None:
        if self.n < 0 or self.max_new_tokens < 1:
            raise ConfigError(
                f"need n >= 0 and max_new_tokens >= 1; got n={self.n}, max_new_tokens={self.max_new_tokens}"
            )
        if self.n > 0 and self.temperature <= 0:
            raise ConfigError(
                f"n={self.n} samples at temperature {self.temperature} would all equal the greedy one; "
                "give a temperature > 0"
            )

    def record(self) -> dict:
        """What determines the results (not the batching), for refusing to mix two settings in one folder."""
        record = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("chunk", "grader_workers")}
        if record["extraction"] == "strict":  # the default leaves records written before the option unchanged
            del record["extraction"]
        return record


def prepare(specs: Sequence[str], settings: EvalSettings) -> tuple[Template, list[Benchmark]]:
    """Template and every benchmark file, checked before any model is loaded or anything is written."""
    settings.check()
    if not specs:
        raise ConfigError("no benchmarks given; name at least one (e.g. math500) or NAME=FILE.jsonl")
    template = load_template(settings.template, settings.stop)
    benches = [load_benchmark(spec, settings.data_dir, settings.limit) for spec in specs]
    names = [b.name for b in benches]
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark names must differ (they name the output files); got {', '.join(names)}")
    return template, benches


def check_folder(eval_dir: Path, record: dict) -> None:
    """Refuse a folder whose finished benchmarks were made with other settings (or another model),
    else record the settings in it."""
    refuse_other_settings(eval_dir, record)
    atomic_write_json(eval_dir / "settings.json", json.loads(json.dumps(record)))


def refuse_other_settings(eval_dir: Path, record: dict) -> None:
    """The refusal of ``check_folder`` alone: nothing is written."""
    path = eval_dir / "settings.json"
    record = json.loads(json.dumps(record))  # as it reads back (tuples become lists)
    if path.exists():
        old = read_json(path)
        if old != record:
            changed = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
            raise RunDirError(
                f"{eval_dir} holds results made with other settings ({', '.join(changed)} differ, see {path}); "
                "give another --out, or delete the folder to redo it"
            )


def run_benchmarks(
    generator: Generator,
    tokenizer,
    template: Template,
    benches: Sequence[Benchmark],
    settings: EvalSettings,
    eval_dir: Path,
    *,
    show_progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Per-benchmark metrics; a benchmark whose ``<name>.jsonl`` exists is read back, not redone."""
    results: dict[str, dict[str, float]] = {}
    for bench in benches:
        done = Path(eval_dir) / f"{bench.name}.jsonl"
        if done.exists():
            if show_progress:
                progress.info(f"[eval] {bench.name}: finished earlier, read from {done}")
        else:
            total = len(bench.problems) * (2 if settings.n else 1)
            with progress.stage(f"[eval] {bench.name}", total, show_progress) as advance:
                rows = evaluate_benchmark(generator, tokenizer, template, bench, settings, advance)
            atomic_write_jsonl(done, rows)
        results[bench.name] = benchmark_metrics(read_jsonl(done), is_equiv)
    write_results(Path(eval_dir), results)
    return results


def evaluate_benchmark(
    generator: Generator,
    tokenizer,
    template: Template,
    bench: Benchmark,
    settings: EvalSettings,
    advance: Callable[[int], None] = lambda n: None,
) -> list[dict]:
    """Graded rows: one greedy response per problem, then ``settings.n`` samples per problem."""
    prompts = [template.encode(p, tokenizer) for p in bench.problems]  # each a list of token ids
    common = dict(max_new_tokens=settings.max_new_tokens, stop=template.stop)
    runs = [("greedy", SamplingParams(n=1, temperature=0.0, **common))]
    if settings.n:
        sampled = SamplingParams(n=settings.n, temperature=settings.temperature, top_p=settings.top_p, **common)
        runs.append(("sampled", sampled))
    rows: list[dict] = []
    for mode, params in runs:
        for start in range(0, len(prompts), settings.chunk):
            end = min(start + settings.chunk, len(prompts))
            # seeded per chunk, so a result does not depend on how many chunks ran before in this process
            chunk_params = dataclasses.replace(params, seed=settings.seed + start) if params.temperature > 0 else params
            batch = generator.generate(prompts[start:end], chunk_params, answers=bench.answers[start:end])
            texts = [cut_at_stop(t, template.stop) for t in batch.response_texts]
            verdicts = grade_batch(zip(texts, batch.answers), workers=settings.grader_workers, mode=settings.extraction)
            lengths, truncated = batch.response_lengths.tolist(), batch.truncated.tolist()
            for row, (text, verdict) in enumerate(zip(texts, verdicts)):
                index = start + row // params.n
                rows.append(
                    {
                        "problem_index": index,
                        "mode": mode,
                        "sample": row % params.n,
                        "problem": bench.problems[index],
                        "gold": bench.answers[index],
                        "response": text,
                        "extracted": verdict.extracted,
                        "correct": verdict.correct,
                        "method": verdict.method,
                        "length": lengths[row],
                        "truncated": bool(truncated[row]),
                    }
                )
            advance(end - start)
    return rows


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The response up to its first stop string: the stop string and anything after it are not the answer."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


def write_results(eval_dir: Path, results: dict[str, dict[str, float]]) -> tuple[Path, Path]:
    md, js = eval_dir / "results.md", eval_dir / "results.json"
    atomic_write_text(md, results_table(results) + "\n")
    atomic_write_json(js, {"benchmarks": results, "flat": flat_metrics(results)})
    return md, js


def evaluate_benchmarks(
    generator: Generator,
    tokenizer,
    names: Sequence[str],
    cfg,
    out_dir: Path,
    *,
    max_new_tokens: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, float]:
    """The training loop's hook: benchmarks ``names`` with the ``eval`` config section ``cfg`` (k samples
    at its temperature, its template, data_dir and benchmark_limit), files under ``out_dir/eval``.

    Returns flat metrics such as ``bench/math500/greedy_accuracy`` and ``bench/average/greedy_accuracy``.
    ``max_new_tokens`` is used when ``cfg.max_new_tokens`` is None (the loop passes generation.max_new_tokens).
    """
    tokens = cfg.max_new_tokens or max_new_tokens
    if tokens is None:
        raise ConfigError("benchmark evaluation needs eval.max_new_tokens (or the max_new_tokens argument)")
    settings = EvalSettings(
        n=cfg.k,
        temperature=cfg.temperature,
        max_new_tokens=tokens,
        template=cfg.template,
        data_dir=cfg.data_dir,
        limit=cfg.benchmark_limit,
        seed=seed,
    )
    template, benches = prepare(names, settings)
    results = run_benchmarks(
        generator, tokenizer, template, benches, settings, Path(out_dir) / "eval", show_progress=show_progress
    )
    return flat_metrics(results)
