"""Sampling loops written out over the scheduler protocol."""
