"""Training loops, losses, EMA, checkpoints and resume."""
