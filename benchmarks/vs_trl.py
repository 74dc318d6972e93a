"""itero against TRL on the same job: same SFT model, prompts, 0/1 reward, settings and wall-clock.

Builds the quickstart task's SFT model (or takes --sft), exports the training prompts in itero's
order as TRL's dataset, then runs itero's GRPO preset and TRL's GRPOTrainer (--job dpo: iterative
DPO and TRL's experimental OnlineDPOTrainer) for --seconds each, both at once with one thread each
(--mode parallel) or one after the other (--mode alternate). Each side saves a checkpoint at every
round's end; after the timed part, every checkpoint is decoded greedily on the same fresh problems.
Writes OUT/vs_trl.json, OUT/vs_trl.md and OUT/vs_trl.png (settings: benchmarks/vs_trl/settings.py).

    python benchmarks/vs_trl.py                        # GRPO, 900 s each, parallel, 2000 problems
    python benchmarks/vs_trl.py --job dpo --mode alternate --seconds 600
    python benchmarks/vs_trl.py --smoke --seconds 6    # CI: tiny model, a few rounds

Needs TRL: pip install 'itero[bench]'.
"""

import sys
from pathlib import Path

# The package benchmarks/vs_trl/ holds the code; Python finds it before this file for `import vs_trl`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_trl.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
