"""The loop's stages: ``sft`` (warm-up), ``rollouts`` (generate, score), ``prepare`` and ``train``.

Each stage of an iteration takes the runtime, the iteration's folder, k and the checkpoint the
iteration starts from, and writes its metrics and then its output; ``tracking.rundir.run_stage``
skips a stage whose output exists and records its time and config.
"""
