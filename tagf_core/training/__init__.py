"""Training: CCC loss and metrics, the warm-up/plateau lr schedule, gradual backbone release, the epoch loop."""
