"""Launching many runs: in sequence here (``jobs.py``) or as Ray tasks across a cluster (``ray_executor.py``)."""
