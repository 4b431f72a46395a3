"""Errors a user can act on.

Every error synthkit raises for bad input derives from :class:`SynthkitError`; the CLI prints its message as
one line and exits with :attr:`SynthkitError.exit_code` (2 for usage errors, 1 otherwise).
"""

from __future__ import annotations


class SynthkitError(Exception):
    """An error with a message meant for the user, not a traceback."""

    exit_code: int = 1


class UsageError(SynthkitError):
    """The command line asked for something impossible (exit code 2)."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe file is missing, unreadable or does not match its schema."""


class ManifestError(SynthkitError):
    """A manifest is missing, malformed or has bad rows."""


class NiftiError(SynthkitError):
    """A NIfTI file is missing, truncated, not 3D or holds non-finite values."""


class StoreError(SynthkitError):
    """A cohort store is missing, incomplete or inconsistent."""


class CheckpointError(SynthkitError):
    """A checkpoint file is missing, truncated, unsafe or of an unknown kind."""


class TrainingError(SynthkitError):
    """Training cannot go on (the loss became NaN or infinite)."""
