"""Predictions from trained runs: for a partition of their data, for arrays, for any video file."""
