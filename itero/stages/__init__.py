"""The loop's stages: ``sft`` (warm-up), ``rollouts`` (generate, score), ``prepare`` and ``train``.

Each is a function over the batch the stage before returned (generate: over iteration k's prompts) and
returns a ``tracking.resume.StageOutput``; it writes no file. ``tracking.resume.StageFolder.run`` skips
a stage whose output exists, loads its input, writes what it returned and records its time and config.
"""
