"""itero against TRL on the same job: ``python benchmarks/vs_trl.py --help``."""
