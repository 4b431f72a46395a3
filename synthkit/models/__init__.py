"""Generators behind one protocol (DESIGN §5): the phantom and trained checkpoints."""
