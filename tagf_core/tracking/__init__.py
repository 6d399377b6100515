"""Experiment tracking behind a small interface.

``tracker.Tracker`` is what the training loop logs through; ``tracker.InMemoryTracker`` records it for tests;
``mlflow_tracker.MlflowSession`` opens MLflow runs (one parent run per stamp, one child run per fold × emotion)
and is, with ``store`` (which opens a local SQLite store safely), the only module importing mlflow, inside
its functions. ``plots`` draws the PNGs a run logs. (Keeping a stamp's statuses true from its run folders is
``tagf_core.launch.stamp_status``: it needs the run folder, which tracking does not know.)
Nothing here is imported by this package file, so ``import tagf_core.tracking`` loads neither torch nor mlflow.
"""
