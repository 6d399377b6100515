"""Experiment tracking behind a small interface.

``tracker.Tracker`` is what the training loop logs through; ``tracker.InMemoryTracker`` records it for tests;
``mlflow_tracker.MlflowSession`` opens MLflow runs (one parent run per stamp, one child run per fold × emotion)
and is, with ``store`` (which opens a local SQLite store safely), the only module importing mlflow, inside
its functions. ``stamp_status`` keeps a stamp's statuses true (a dead RUNNING run → KILLED, the parent from its
children). ``plots`` draws the PNGs a run logs.
Nothing here is imported by this package file, so ``import tagf_core.tracking`` loads neither torch nor mlflow.
"""
