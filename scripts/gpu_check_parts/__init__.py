"""Pieces of ``scripts/gpu_check.py``: the workload and its models (``setup``), the checks (``checks``),
and the JSON / markdown report (``report``)."""
