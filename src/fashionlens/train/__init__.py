"""Training: losses and loops."""
