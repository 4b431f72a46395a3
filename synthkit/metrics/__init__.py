"""Pure metric functions over arrays and features."""
