"""The audit suite and its reports."""
