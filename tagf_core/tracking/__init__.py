"""Experiment tracking behind a small interface.

``tracker.Tracker`` is what the training loop logs through; ``tracker.InMemoryTracker`` records it for tests;
``mlflow_tracker.MlflowSession`` opens MLflow runs (one parent run per stamp, one child run per fold × emotion)
and is the only module that imports mlflow, inside its functions. ``plots`` draws the PNGs a run logs.
Nothing here is imported by this package file, so ``import tagf_core.tracking`` loads neither torch nor mlflow.
"""
