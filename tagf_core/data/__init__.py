"""Reading preprocessed trials: on-disk layout, folds, windows, transforms, Dataset."""
